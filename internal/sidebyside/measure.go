// Package sidebyside measures converge against Flux's own controllers on
// one cluster: the figures a run prints (time to Ready, CPU, memory, API
// requests by verb) and the cluster's raw server-side-apply rate, which
// bounds what any controller can reach. The run itself is the test in
// this folder, behind the build tag "sidebyside":
//
//	go test -tags sidebyside -timeout 3h ./internal/sidebyside -v
package sidebyside

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"converge.dev/converge/internal/cluster"
)

// Proc is a process's resource use, read from /proc.
type Proc struct {
	// CPU is user plus system time.
	CPU time.Duration
	// RSS is the resident set now; Peak is its high-water mark.
	RSS, Peak int64
	// Anon is the part of RSS that is the process's own memory (heap,
	// stacks); the rest is pages of its executable and other files,
	// which the kernel can drop and share.
	Anon int64
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// ReadProc reads pid's CPU time and memory.
func ReadProc(pid int) (Proc, error) {
	var p Proc
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, err
	}
	// The command name may hold spaces: fields count from after ')'.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return p, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	p.CPU = time.Duration(utime+stime) * time.Second / clockTicks
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return p, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			p.RSS = kb << 10
		case "VmHWM":
			p.Peak = kb << 10
		case "RssAnon":
			p.Anon = kb << 10
		}
	}
	return p, sc.Err()
}

// SumProcs adds up several processes (Flux runs two).
func SumProcs(pids ...int) (Proc, error) {
	var sum Proc
	for _, pid := range pids {
		p, err := ReadProc(pid)
		if err != nil {
			return sum, err
		}
		sum.CPU += p.CPU
		sum.RSS += p.RSS
		sum.Peak += p.Peak
		sum.Anon += p.Anon
	}
	return sum, nil
}

// Requests counts API requests by verb and resource ("PATCH
// configmaps"), from the API server's own apiserver_request_total. Every
// client's requests count, so a run should have the cluster to itself.
type Requests map[string]float64

// ReadRequests scrapes the API server's metrics.
func ReadRequests(ctx context.Context, cfg *rest.Config) (Requests, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("API server metrics: %w", err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		return nil, fmt.Errorf("API server metrics: %w", err)
	}
	out := Requests{}
	fam := fams["apiserver_request_total"]
	if fam == nil {
		return nil, fmt.Errorf("API server metrics: no apiserver_request_total")
	}
	for _, m := range fam.GetMetric() {
		verb, resource, sub, dry := "", "", "", false
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "verb":
				verb = l.GetValue()
			case "resource":
				resource = l.GetValue()
			case "subresource":
				sub = l.GetValue()
			case "dry_run":
				dry = l.GetValue() != ""
			}
		}
		if dry {
			verb += "(dry-run)"
		}
		if sub != "" {
			resource += "/" + sub
		}
		out[verb+" "+resource] += m.GetCounter().GetValue()
	}
	return out, nil
}

// Sub is r minus an earlier reading.
func (r Requests) Sub(before Requests) Requests {
	out := Requests{}
	for k, v := range r {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// ByVerb sums over resources.
func (r Requests) ByVerb() map[string]float64 {
	out := map[string]float64{}
	for k, v := range r {
		verb, _, _ := strings.Cut(k, " ")
		out[verb] += v
	}
	return out
}

// Writes counts the requests that change something (dry runs do not).
func (r Requests) Writes() float64 {
	n := 0.0
	for k, v := range r.ByVerb() {
		switch k {
		case "POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY", "CREATE", "UPDATE":
			n += v
		}
	}
	return n
}

// Reads counts GET and LIST requests (WATCH streams are not counted:
// one stays open for the whole run).
func (r Requests) Reads() float64 { v := r.ByVerb(); return v["GET"] + v["LIST"] }

// String lists the counts by verb.
func (r Requests) String() string { return format(r.ByVerb()) }

// Detail lists the counts by verb and resource.
func (r Requests) Detail() string { return format(r) }

func format(m map[string]float64) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %.0f, ", k, m[k])
	}
	return strings.TrimSuffix(b.String(), ", ")
}

// SSARate is the server-side-apply throughput of a tight client loop:
// n ConfigMaps in namespace ns applied by the given number of workers,
// with no client-side rate limit. It is the ceiling a controller's
// applies can approach on this cluster.
func SSARate(ctx context.Context, cfg *rest.Config, ns string, n, workers int, revision string) (float64, error) {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = -1, 0
	cl, err := cluster.New(c)
	if err != nil {
		return 0, err
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				cm := &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": "v1", "kind": "ConfigMap",
					"metadata": map[string]any{"name": fmt.Sprintf("raw-%05d", i), "namespace": ns},
					"data":     map[string]any{"revision": revision},
				}}
				if _, err := cl.Apply(ctx, cm, cluster.ApplyOptions{Force: true}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, fmt.Errorf("raw apply: %w", err)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
