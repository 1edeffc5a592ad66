package controller

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/forgetest"
	"converge.dev/converge/internal/gittest"
)

var (
	receiverOnce sync.Once
	receiverURL  string
)

// webhookReceiver returns the test controller's receiver URL.
func webhookReceiver(t testing.TB) string {
	receiverOnce.Do(func() {
		select {
		case receiverURL = <-webhookURL:
		case <-time.After(30 * time.Second):
		}
	})
	if receiverURL == "" {
		t.Fatal("the controller's webhook receiver did not start")
	}
	return receiverURL
}

func configMapYAML(name, value string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + "}\ndata: {value: \"" + value + "\"}\n"
}

func app(ns, name, repoURL, path string, ann map[string]string) *v1alpha1.Application {
	return &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: ann},
		Spec: v1alpha1.ApplicationSpec{
			Project:     "default",
			Source:      &v1alpha1.ApplicationSource{RepoURL: repoURL, TargetRevision: "main", Path: path},
			Destination: v1alpha1.ApplicationDestination{Server: "https://kubernetes.default.svc", Namespace: ns},
			SyncPolicy:  &v1alpha1.SyncPolicy{Automated: &v1alpha1.SyncPolicyAutomated{Prune: true, SelfHeal: true}},
		},
	}
}

func refreshes(ns, name string) float64 {
	return counter("converge_webhook_refreshes_total", map[string]string{"namespace": ns, "name": name})
}

// counter is the value of the series of metric name whose labels include
// want; 0 if there is none.
func counter(name string, want map[string]string) float64 {
	families, _ := ctrlmetrics.Registry.Gather()
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			for k, v := range want {
				if l[k] != v {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func configMapValue(c client.Client, ns, name string) string {
	cm := &corev1.ConfigMap{}
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, cm); err != nil {
		return ""
	}
	return cm.Data["value"]
}

// forgeEnv is a Gitea repository with a push hook to the controller and
// three Applications: team-a and team-b on the forge (team-b limited to
// its own folder by manifest-generate-paths), other on another repo.
type forgeEnv struct {
	c    client.Client
	ns   string
	repo *forgetest.Repo
}

func newForgeEnv(t testing.TB) *forgeEnv {
	c, other := setup(t)
	ns := clustertest.Namespace(t)
	forge := forgetest.Start(t)
	repo := forge.CreateRepo(t, "apps")
	repo.AddPushHook(webhookReceiver(t), giteaSecret)
	// Gitea queues deliveries: wait for the initial push's, so that it
	// cannot land in the middle of a test's counts.
	before := deliveries()["200"]
	repo.Push("initial", map[string]string{
		"team-a/cm.yaml": configMapYAML("team-a", "v0"),
		"team-b/cm.yaml": configMapYAML("team-b", "v0"),
	})
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return deliveries()["200"] > before, nil
	})
	if err != nil {
		t.Fatalf("the initial push was not delivered within 30s: %v", deliveries())
	}
	create(t, c, &v1alpha1.AppProject{
		ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
		Spec: v1alpha1.AppProjectSpec{SourceRepos: []string{"*"},
			Destinations: []v1alpha1.ApplicationDestination{{Server: "*", Namespace: "*"}}},
	})
	create(t, c, app(ns, "team-a", repo.CloneURL, "team-a", nil))
	create(t, c, app(ns, "team-b", repo.CloneURL, "team-b", map[string]string{ManifestGeneratePathsAnnotation: "."}))
	create(t, c, app(ns, "other", gittest.FileURL(other.Bare), "apps/orders-api/base", nil))
	for _, name := range []string{"team-a", "team-b", "other"} {
		waitNamed(t, c, ns, name, "Synced", func(a *v1alpha1.Application) bool { return a.Status.Sync.Status == "Synced" })
	}
	return &forgeEnv{c: c, ns: ns, repo: repo}
}

// TestWebhookPushFromGitea: a push to a real Gitea is delivered, signed,
// to the receiver, which refreshes only the Applications it affects; the
// change lands long before the 10-minute poll. A delivery with a wrong
// signature refreshes nothing.
func TestWebhookPushFromGitea(t *testing.T) {
	e := newForgeEnv(t)
	start := time.Now()
	e.repo.Push("team-a v1", map[string]string{"team-a/cm.yaml": configMapYAML("team-a", "v1")})
	pushed := time.Now()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return configMapValue(e.c, e.ns, "team-a") == "v1", nil
	})
	if err != nil {
		t.Fatalf("team-a's change not applied within 30s of the push (polling is every 10m); deliveries by code: %v", deliveries())
	}
	t.Logf("git push took %s; applied %s after the push returned", pushed.Sub(start).Round(time.Millisecond), time.Since(pushed).Round(time.Millisecond))
	if n := refreshes(e.ns, "team-a"); n != 1 {
		t.Errorf("team-a refreshed %v times, want 1", n)
	}
	for _, name := range []string{"team-b", "other"} {
		if n := refreshes(e.ns, name); n != 0 {
			t.Errorf("%s refreshed %v times by a push that does not affect it", name, n)
		}
	}

	// Forged deliveries: a wrong key, and the GitHub header path with the
	// Gitea key.
	body := []byte(`{"ref":"refs/heads/main","repository":{"clone_url":"` + e.repo.CloneURL + `"}}`)
	m := hmac.New(sha256.New, []byte("not-the-secret"))
	m.Write(body)
	for _, h := range []map[string]string{
		{"X-Gitea-Event": "push", "X-Gitea-Signature": hex.EncodeToString(m.Sum(nil))},
		{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + hex.EncodeToString(m.Sum(nil))},
	} {
		req, _ := http.NewRequest("POST", webhookReceiver(t), bytes.NewReader(body))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("forged delivery %v: %s, want 401", h, resp.Status)
		}
	}
	if n := refreshes(e.ns, "team-a") + refreshes(e.ns, "team-b"); n != 1 {
		t.Errorf("forged deliveries refreshed Applications (%v refreshes in all, want 1)", n)
	}

	// team-b's own folder changes: now it is refreshed.
	e.repo.Push("team-b v1", map[string]string{"team-b/cm.yaml": configMapYAML("team-b", "v1")})
	err = wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return configMapValue(e.c, e.ns, "team-b") == "v1", nil
	})
	if err != nil {
		t.Fatal("team-b's change not applied within 30s of the push")
	}
	if n := refreshes(e.ns, "team-b"); n != 1 {
		t.Errorf("team-b refreshed %v times, want 1; deliveries %v", n, deliveries())
	}
}

// BenchmarkWebhookPushToApplied measures, per push, the time from `git
// push` returning to the pushed change being live in the cluster: Gitea's
// delivery, the receiver, the refresh, fetch, render, validation and
// apply. Run: go test ./internal/controller -run '^$' -bench WebhookPushToApplied -benchtime 20x
func BenchmarkWebhookPushToApplied(b *testing.B) {
	e := newForgeEnv(b)
	var total, worst time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v := "bench-" + string(rune('a'+i%26)) + time.Now().Format("150405.000")
		b.StopTimer()
		e.repo.Push("bench", map[string]string{"team-a/cm.yaml": configMapYAML("team-a", v)})
		b.StartTimer()
		pushed := time.Now()
		err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
			return configMapValue(e.c, e.ns, "team-a") == v, nil
		})
		if err != nil {
			b.Fatalf("push %d not applied within 60s", i)
		}
		d := time.Since(pushed)
		total += d
		worst = max(worst, d)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/push")
	b.ReportMetric(float64(worst.Milliseconds()), "worst-ms")
}

func deliveries() map[string]float64 {
	out := map[string]float64{}
	families, _ := ctrlmetrics.Registry.Gather()
	for _, f := range families {
		if f.GetName() == "converge_webhook_deliveries_total" {
			for _, m := range f.GetMetric() {
				out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

func rawMerge(patch []byte) client.Patch { return client.RawPatch(types.MergePatchType, patch) }
