package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/plan"
)

// errKilled is what every request gets once the simulated process died.
var errKilled = errors.New("simulated SIGKILL: the process is gone")

// dyingTransport passes the first budget requests to the server and
// fails every later one before it is sent: from the API server's point of
// view, exactly what a process killed at that moment leaves behind.
// Counting requests makes the kill point deterministic.
type dyingTransport struct {
	next   http.RoundTripper
	budget int64
	sent   atomic.Int64
}

func (d *dyingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if d.budget >= 0 && d.sent.Add(1) > d.budget {
		return nil, errKilled
	}
	return d.next.RoundTrip(r)
}

// process is one run of converge: a fresh engine (no memory of earlier
// runs) on a client that dies after budget requests (-1: never). The Git
// cache on disk survives, as it does across a real restart.
func (e *env) process(budget int64) (*Engine, *dyingTransport) {
	e.t.Helper()
	cfg := rest.CopyConfig(clustertest.RESTConfig(e.t))
	d := &dyingTransport{budget: budget}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { d.next = rt; return d })
	cfg.QPS, cfg.Burst = 500, 1000
	c, err := cluster.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return New(Options{Fetcher: e.eng.o.Fetcher, Cluster: c}), d
}

// fresh is a new process that is never killed.
func (e *env) fresh() *Engine {
	eng, _ := e.process(-1)
	return eng
}

// configMaps writes n ConfigMaps named prefix-i, i from lo to hi-1.
func configMaps(prefix string, lo, hi int, value string) string {
	var b strings.Builder
	for i := lo; i < hi; i++ {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s-%02d\n  annotations: {argocd.argoproj.io/sync-wave: %q}\ndata: {v: %q}\n",
			prefix, i, fmt.Sprint(i%3), value)
	}
	return b.String()
}

// owned lists the ConfigMaps in the namespace that carry the unit's owner
// annotation: what a user would find left behind.
func (e *env) owned() []string {
	e.t.Helper()
	list, err := e.cs.CoreV1().ConfigMaps(e.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, cm := range list.Items {
		if cm.Annotations[plan.OwnerAnnotation] == e.unit.Name {
			out = append(out, cm.Name)
		}
	}
	sort.Strings(out)
	return out
}

// TestKilledSyncLeavesNothingUnfindable kills converge at 12 points spread
// over a sync of a new revision (revision B adds 20 ConfigMaps to A's 30
// and changes them all), then lets a new process sync revision C, which
// keeps 5, with prune. Whatever the kill point, exactly C's 5 must be
// left: nothing the killed sync applied may escape the inventory.
func TestKilledSyncLeavesNothingUnfindable(t *testing.T) {
	e := newEnv(t, "fault")
	revA := configMaps("cm", 0, 30, "a")
	revB := configMaps("cm", 0, 50, "b")
	revC := configMaps("cm", 0, 5, "c")
	publish := func(content string) {
		e.repo.Commit("rev", map[string]string{"fault/all.yaml": content})
		e.repo.Publish()
	}
	syncWith := func(eng *Engine) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_, err := eng.Sync(ctx, e.unit, SyncOptions{Prune: true, Wait: true})
		return err
	}
	wantC := []string{"cm-00", "cm-01", "cm-02", "cm-03", "cm-04"}

	// An unkilled run of B measures how many requests a sync makes.
	publish(revA)
	if err := syncWith(e.eng); err != nil {
		t.Fatal(err)
	}
	publish(revB)
	eng, d := e.process(-1)
	if err := syncWith(eng); err != nil {
		t.Fatal(err)
	}
	total := d.sent.Load()
	t.Logf("a whole sync of revision B makes %d API requests", total)

	const points = 12
	for i := 0; i < points; i++ {
		kill := 1 + int64(i)*(total-1)/(points-1)
		publish(revA)
		if err := syncWith(e.fresh()); err != nil {
			t.Fatalf("kill point %d: back to A: %v", kill, err)
		}
		publish(revB)
		eng, _ := e.process(kill)
		err := syncWith(eng)
		if kill < total && err == nil {
			t.Errorf("kill after %d of %d requests: the sync did not notice", kill, total)
		}
		publish(revC)
		if err := syncWith(e.fresh()); err != nil {
			t.Fatalf("kill point %d: sync of C after the kill: %v", kill, err)
		}
		if got := e.owned(); strings.Join(got, ",") != strings.Join(wantC, ",") {
			t.Errorf("killed after %d of %d requests: left %d ConfigMaps %v, want %v", kill, total, len(got), got, wantC)
		}
	}
}

// TestDegradedWaveThenRemoval: revision B adds a ConfigMap and a Job that
// fails in wave 1, so the sync stops; revision C removes both from Git.
// Prune must delete both, since B applied them.
func TestDegradedWaveThenRemoval(t *testing.T) {
	e := newEnv(t, "degraded")
	e.repo.Commit("A", map[string]string{"degraded/keep.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\n"})
	e.repo.Publish()
	e.sync(SyncOptions{Prune: true, Wait: true})

	e.repo.Commit("B", map[string]string{"degraded/more.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: added}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: broken
  annotations: {argocd.argoproj.io/sync-wave: "1"}
spec:
  backoffLimit: 0
  template:
    metadata: {annotations: {sim.converge.dev/state: Failed}}
    spec:
      restartPolicy: Never
      containers: [{name: m, image: example/broken:1}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: never-reached
  annotations: {argocd.argoproj.io/sync-wave: "2"}
`})
	e.repo.Publish()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.eng.Sync(ctx, e.unit, SyncOptions{Prune: true, Wait: true}); err == nil || !strings.Contains(err.Error(), "Degraded") {
		t.Fatalf("sync of B: got %v, want the Job Degraded", err)
	}
	if got := e.owned(); strings.Join(got, ",") != "added,keep" {
		t.Fatalf("after B: %v", got)
	}

	e.repo.Commit("C", map[string]string{"degraded/more.yaml": ""})
	e.repo.Publish()
	// Also after a restart, which forgets all memory.
	if _, err := e.fresh().Sync(context.Background(), e.unit, SyncOptions{Prune: true, Wait: true}); err != nil {
		t.Fatal(err)
	}
	if got := e.owned(); strings.Join(got, ",") != "keep" {
		t.Errorf("after C: ConfigMaps %v, want only keep", got)
	}
	if _, err := e.cs.BatchV1().Jobs(e.ns).Get(context.Background(), "broken", metav1.GetOptions{}); err == nil {
		t.Error("the Job of the failed sync was not pruned")
	}
}
