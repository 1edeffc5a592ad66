package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"converge.dev/converge/internal/server"
	"converge.dev/converge/internal/server/rbac"
	"converge.dev/converge/internal/server/session"
	"converge.dev/converge/internal/units"
)

// fleet fills an index with n units of both dialects, as a large
// installation would have them: a quarter Flux, a tenth unhealthy.
func fleet(n int) *units.Index {
	x := units.NewIndex()
	for i := range n {
		s := units.Summary{Ref: units.Ref{Kind: "Application", Namespace: fmt.Sprintf("team-%02d", i%40), Name: fmt.Sprintf("service-%05d", i)},
			Dialect: units.ArgoCD, Project: fmt.Sprintf("team-%02d", i%40), Cluster: fmt.Sprintf("cluster-%d", i%5),
			Source: "https://git.example.com/platform/deploy.git apps/service", Revision: "0123456789abcdef0123456789abcdef01234567",
			Sync: "Synced", Health: "Healthy", Labels: map[string]string{"team": fmt.Sprintf("team-%02d", i%40), "tier": "backend"},
			Created: time.Now(), Version: "1"}
		if i%4 == 0 {
			s.Kind, s.Dialect, s.Project = "Kustomization", units.Flux, ""
		}
		if i%10 == 0 {
			s.Sync, s.Health, s.Message = "OutOfSync", "Degraded", "Deployment service: 0 of 3 replicas available"
		}
		x.Put(s)
	}
	return x
}

// uiServer serves an index as the admin sees it, with Argo CD's
// built-in policy plus a project-scoped team (RBAC is checked per row).
func uiServer(tb testing.TB, x *units.Index) (*httptest.Server, *http.Client) {
	acc, err := session.NewAccount("pw")
	if err != nil {
		tb.Fatal(err)
	}
	sessions, err := session.New(session.Options{Accounts: map[string]session.Account{"admin": acc}})
	if err != nil {
		tb.Fatal(err)
	}
	policy, err := rbac.New(rbac.Policy{CSV: "p, role:team, applications, get, team-01/*, allow\ng, team-01-devs, role:team\n"})
	if err != nil {
		tb.Fatal(err)
	}
	hs := httptest.NewServer(server.New(server.Options{Index: x, Sessions: sessions, Policy: func() *rbac.Enforcer { return policy }}))
	tb.Cleanup(hs.Close)
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	resp, err := hc.Post(hs.URL+"/api/v1/session", "application/json", strings.NewReader(`{"username":"admin","password":"pw"}`))
	if err != nil || resp.StatusCode != 200 {
		tb.Fatalf("login: %v %v", resp, err)
	}
	resp.Body.Close()
	return hs, hc
}

// BenchmarkUnits10k measures the list API over 10,000 units: the first
// page, and a filtered query (health and a name search), as server time
// per request (p50 and p95 over the run, JSON encoding and RBAC per row
// included), and the heap the index holds. Run:
// go test ./internal/server -run '^$' -bench Units10k -benchtime 200x
func BenchmarkUnits10k(b *testing.B) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	x := fleet(10000)
	runtime.GC()
	runtime.ReadMemStats(&after)
	hs, hc := uiServer(b, x)
	// Sub-benchmarks' parents print no metrics: the heap goes to the log.
	b.Logf("the index of 10,000 units holds %.1f MiB of heap", float64(after.HeapAlloc-before.HeapAlloc)/(1<<20))
	for _, q := range []struct{ name, query string }{
		{"first-page", "/api/v1/units"},
		{"filtered", "/api/v1/units?health=Degraded&search=service-00&kind=Application"},
	} {
		b.Run(q.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				start := time.Now()
				resp, err := hc.Get(hs.URL + q.query)
				if err != nil || resp.StatusCode != 200 {
					b.Fatalf("%v %v", resp, err)
				}
				var n int64
				buf := make([]byte, 32<<10)
				for {
					m, err := resp.Body.Read(buf)
					n += int64(m)
					if err != nil {
						break
					}
				}
				resp.Body.Close()
				took = append(took, time.Since(start))
			}
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[len(took)*95/100].Microseconds())/1000, "p95-ms")
		})
	}
}

// BenchmarkUIList10k measures, in headless Chromium, the time from
// opening the list to its first rows drawn, and to all 10,000 units
// loaded (ten pages of 1,000), with the list scrolled through once.
// Run: go test ./internal/server -run '^$' -bench UIList10k -benchtime 3x
func BenchmarkUIList10k(b *testing.B) {
	hs, _ := uiServer(b, fleet(10000))
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), chromiumOptions(b)...)
	defer cancel()
	ctx, cancel2 := chromedp.NewContext(alloc)
	defer cancel2()
	err := chromedp.Do(ctx, chromedp.Navigate(hs.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`#login`)),
		chromedp.SendKeys(chromedp.CSS(`#login input[name=username]`), "admin"),
		chromedp.SendKeys(chromedp.CSS(`#login input[name=password]`), "pw"),
		chromedp.Click(chromedp.CSS(`#login button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.row`)))
	if err != nil {
		b.Fatal(err)
	}
	var first, all []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := chromedp.Do(ctx, chromedp.Navigate(hs.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`.row`))); err != nil {
			b.Fatal(err)
		}
		first = append(first, time.Since(start))
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`main[data-ready="true"]`))); err != nil {
			b.Fatal(err)
		}
		all = append(all, time.Since(start))
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`(() => { const v = document.getElementById("units");
			v.scrollTop = v.scrollHeight; v.dispatchEvent(new Event("scroll")); return document.querySelectorAll(".row").length })()`))
		if err != nil || n > 200 {
			b.Fatalf("rows in the DOM after scrolling: %d (%v); the list must draw only a window", n, err)
		}
	}
	mean := func(d []time.Duration) float64 {
		var s time.Duration
		for _, x := range d {
			s += x
		}
		return float64(s.Milliseconds()) / float64(len(d))
	}
	b.ReportMetric(mean(first), "first-rows-ms")
	b.ReportMetric(mean(all), "all-10k-ms")
}
