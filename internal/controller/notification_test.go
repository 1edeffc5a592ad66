package controller

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	notificationv1 "converge.dev/converge/internal/api/fluxcd/notification/v1"
	"converge.dev/converge/internal/api/fluxcd/notification/v1beta3"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/forgetest"
	"converge.dev/converge/internal/notify"
)

// hmacSink is a webhook endpoint that keeps the events whose
// X-Signature verifies with its key, and counts the others.
type hmacSink struct {
	mu       sync.Mutex
	key      string
	events   []notify.Event
	unsigned int
}

func (s *hmacSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	m := hmac.New(sha256.New, []byte(s.key))
	m.Write(body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Header.Get("X-Signature") != "sha256="+hex.EncodeToString(m.Sum(nil)) {
		s.unsigned++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var e notify.Event
	if err := json.Unmarshal(body, &e); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.events = append(s.events, e)
}

// find is the first event of severity whose revision ends with commit.
func (s *hmacSink) find(severity, commit string) (notify.Event, bool) {
	return s.match(func(e notify.Event) bool { return e.Severity == severity && strings.HasSuffix(e.Revision(), commit) })
}

// match is the first event ok accepts.
func (s *hmacSink) match(ok func(notify.Event) bool) (notify.Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.events {
		if ok(e) {
			return e, true
		}
	}
	return notify.Event{}, false
}

// notificationsTotal is converge_notifications_total{type, result}.
func notificationsTotal(typ, result string) float64 {
	return counter("converge_notifications_total", map[string]string{"type": typ, "result": result})
}

// waitCommitStatus waits for a status whose context starts with key on
// commit, in state.
func waitCommitStatus(t *testing.T, f *forgetest.Forge, repo *forgetest.Repo, commit, key, state string) {
	t.Helper()
	var last []map[string]any
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 90*time.Second, true, func(context.Context) (bool, error) {
		last = nil
		f.API(t, "GET", "/repos/"+repo.Owner+"/"+repo.Name+"/commits/"+commit+"/statuses", nil, &last)
		for _, s := range last {
			if c, _ := s["context"].(string); strings.HasPrefix(c, key) && s["status"] == state {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no %s commit status %s* on %s: statuses %v", state, key, commit, last)
	}
}

// TestNotifications is issue 20's fourth and fifth must-shows: a Gitea
// Receiver turns a push into a GitRepository reconcile at once (the
// source's interval is ten minutes); a gitea Provider puts a commit
// status on the applied commit, success, then failure on a broken
// change; a generic-hmac Provider receives each event signed with its
// key, with the Alert's metadata.
func TestNotifications(t *testing.T) {
	c, _ := setup(t)
	f := forgetest.Start(t)
	ns, target := clustertest.Namespace(t), clustertest.Namespace(t)
	repo := f.CreateRepo(t, "notified")
	first := repo.Push("initial", map[string]string{
		"app/kustomization.yaml": "resources: [cm.yaml]\n",
		"app/cm.yaml":            configMapYAML("notified", "v1"),
	})
	sink := &hmacSink{key: "hmac-signing-key"}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)

	create(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "gitea-token", Namespace: ns}, StringData: map[string]string{"token": f.Token}})
	create(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hmac", Namespace: ns}, StringData: map[string]string{"token": sink.key}})
	create(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "receiver-token", Namespace: ns}, StringData: map[string]string{"token": "receiver-s3cret"}})
	create(t, c, &v1beta3.Provider{ObjectMeta: metav1.ObjectMeta{Name: "gitea", Namespace: ns},
		Spec: v1beta3.ProviderSpec{Type: "gitea", Address: strings.TrimSuffix(repo.CloneURL, ".git"), SecretRef: &v1beta3.LocalObjectReference{Name: "gitea-token"}}})
	create(t, c, &v1beta3.Provider{ObjectMeta: metav1.ObjectMeta{Name: "webhook", Namespace: ns},
		Spec: v1beta3.ProviderSpec{Type: "generic-hmac", Address: srv.URL + "/events", SecretRef: &v1beta3.LocalObjectReference{Name: "hmac"}}})
	create(t, c, &v1beta3.Alert{ObjectMeta: metav1.ObjectMeta{Name: "commit-status", Namespace: ns},
		Spec: v1beta3.AlertSpec{ProviderRef: v1beta3.LocalObjectReference{Name: "gitea"},
			EventSources: []v1beta3.CrossNamespaceObjectReference{{Kind: "Kustomization", Name: "*"}}}})
	create(t, c, &v1beta3.Alert{ObjectMeta: metav1.ObjectMeta{Name: "webhook", Namespace: ns},
		Spec: v1beta3.AlertSpec{ProviderRef: v1beta3.LocalObjectReference{Name: "webhook"}, Summary: "shop in test",
			EventMetadata: map[string]string{"env": "test"},
			EventSources: []v1beta3.CrossNamespaceObjectReference{{Kind: "Kustomization", Name: "notif*"},
				{Kind: "Application", Name: "*", MatchLabels: map[string]string{"team": "shop"}}}}})
	create(t, c, &notificationv1.Receiver{ObjectMeta: metav1.ObjectMeta{Name: "gitea", Namespace: ns},
		Spec: notificationv1.ReceiverSpec{Type: "gitea", Events: []string{"push"}, SecretRef: notificationv1.LocalObjectReference{Name: "receiver-token"},
			Resources: []notificationv1.CrossNamespaceObjectReference{{Kind: "GitRepository", Name: "notif*"}}}})
	// A Provider whose endpoint refuses: the failure is counted and
	// recorded on the Alert, and nothing is retried (a 403 will not pass).
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) }))
	t.Cleanup(refusing.Close)
	failedBefore := notificationsTotal("generic", "failed")
	// And one that answers 503 twice, then takes: a refused event is
	// sent again.
	var flakyMu sync.Mutex
	var flakyBodies []string
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		flakyMu.Lock()
		defer flakyMu.Unlock()
		flakyBodies = append(flakyBodies, string(b))
		if len(flakyBodies) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(flaky.Close)
	create(t, c, &v1beta3.Provider{ObjectMeta: metav1.ObjectMeta{Name: "flaky", Namespace: ns},
		Spec: v1beta3.ProviderSpec{Type: "generic", Address: flaky.URL + "/events"}})
	create(t, c, &v1beta3.Alert{ObjectMeta: metav1.ObjectMeta{Name: "flaky", Namespace: ns},
		Spec: v1beta3.AlertSpec{ProviderRef: v1beta3.LocalObjectReference{Name: "flaky"},
			EventSources: []v1beta3.CrossNamespaceObjectReference{{Kind: "Kustomization", Name: "*"}}}})
	create(t, c, &v1beta3.Provider{ObjectMeta: metav1.ObjectMeta{Name: "refusing", Namespace: ns},
		Spec: v1beta3.ProviderSpec{Type: "generic", Address: refusing.URL + "/events"}})
	create(t, c, &v1beta3.Alert{ObjectMeta: metav1.ObjectMeta{Name: "refused", Namespace: ns},
		Spec: v1beta3.AlertSpec{ProviderRef: v1beta3.LocalObjectReference{Name: "refusing"},
			EventSources: []v1beta3.CrossNamespaceObjectReference{{Kind: "Kustomization", Name: "*"}}}})
	for _, name := range []string{"gitea", "webhook"} {
		waitObject(t, c, types.NamespacedName{Namespace: ns, Name: name}, &v1beta3.Provider{}, "ready", func(p *v1beta3.Provider) bool { return isReady(p.Status.Conditions) })
	}
	for _, name := range []string{"commit-status", "webhook"} {
		waitObject(t, c, types.NamespacedName{Namespace: ns, Name: name}, &v1beta3.Alert{}, "ready", func(a *v1beta3.Alert) bool { return isReady(a.Status.Conditions) })
	}
	rc := waitObject(t, c, types.NamespacedName{Namespace: ns, Name: "gitea"}, &notificationv1.Receiver{}, "ready",
		func(r *notificationv1.Receiver) bool { return isReady(r.Status.Conditions) })
	h := sha256.Sum256([]byte("receiver-s3cret" + "gitea" + ns))
	if want := "/hook/" + hex.EncodeToString(h[:]); rc.Status.WebhookPath != want {
		t.Fatalf("webhookPath %s, want %s", rc.Status.WebhookPath, want)
	}
	hook := strings.TrimSuffix(webhookReceiver(t), WebhookPath) + rc.Status.WebhookPath
	for _, tc := range []struct {
		url, sig string
		want     int
	}{{hook, "", http.StatusUnauthorized}, {hook, "00ff", http.StatusUnauthorized}, {hook + "0", "", http.StatusNotFound}} {
		req, _ := http.NewRequest(http.MethodPost, tc.url, strings.NewReader(`{"ref":"refs/heads/main"}`))
		req.Header.Set("X-Gitea-Event", "push")
		req.Header.Set("X-Gitea-Signature", tc.sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("POST %s signed %q: %d, want %d", tc.url, tc.sig, resp.StatusCode, tc.want)
		}
	}
	repo.AddPushHook(hook, "receiver-s3cret")

	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "notified", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: repo.CloneURL, Ref: &sourcev1.GitRepositoryRef{Branch: "main"}, Interval: metav1.Duration{Duration: 10 * time.Minute}}})
	create(t, c, &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "notified", Namespace: ns},
		Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "notified"},
			Path: "./app", TargetNamespace: target, Prune: true, Interval: metav1.Duration{Duration: 10 * time.Minute}}})
	waitKustomization(t, c, ns, "notified", "applied", func(k *kustomizev1.Kustomization) bool { return strings.HasSuffix(k.Status.LastAppliedRevision, first) })
	waitCommitStatus(t, f, repo, first, "kustomization/notified/", "success")
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var evs eventsv1.EventList
		if err := c.List(ctx, &evs, client.InNamespace(ns)); err != nil {
			return false, nil
		}
		for _, e := range evs.Items {
			if e.Regarding.Kind == "Alert" && e.Regarding.Name == "refused" && e.Reason == "NotificationFailed" &&
				strings.Contains(e.Note, "generic provider: POST to "+strings.TrimPrefix(refusing.URL, "http://")+": status 403") {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("no NotificationFailed event on Alert refused")
	}
	if n := notificationsTotal("generic", "failed") - failedBefore; n < 1 {
		t.Errorf("converge_notifications_total{type=generic,result=failed} rose by %v", n)
	}
	err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		flakyMu.Lock()
		defer flakyMu.Unlock()
		return len(flakyBodies) >= 3, nil
	})
	flakyMu.Lock()
	// Two senders work at once, so calls interleave: the first refused
	// event must come again.
	if err != nil || slices.Index(flakyBodies[1:], flakyBodies[0]) < 0 {
		t.Errorf("the event the flaky endpoint refused first was not sent again: %q", flakyBodies)
	}
	flakyMu.Unlock()

	// Argo CD's Applications are event sources too.
	create(t, c, &v1alpha1.AppProject{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
		Spec: v1alpha1.AppProjectSpec{SourceRepos: []string{"*"}, Destinations: []v1alpha1.ApplicationDestination{{Server: "*", Namespace: "*"}}}})
	a := app(clustertest.Namespace(t), "notified-app", repo.CloneURL, "app", nil)
	a.Namespace, a.Labels = ns, map[string]string{"team": "shop"}
	create(t, c, a)
	err = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		_, ok := sink.match(func(e notify.Event) bool {
			return e.InvolvedObject.Kind == "Application" && e.Reason == "SyncSucceeded" && e.Revision() == first
		})
		return ok, nil
	})
	if err != nil {
		t.Fatalf("no SyncSucceeded event of the Application at %s: %+v", first, sink.events)
	}

	// A broken change: the Receiver makes the source fetch it now.
	broken := repo.Push("reference a file that is not there", map[string]string{"app/kustomization.yaml": "resources: [cm.yaml, missing.yaml]\n"})
	start := time.Now()
	waitObject(t, c, types.NamespacedName{Namespace: ns, Name: "notified"}, &sourcev1.GitRepository{}, "at "+broken,
		func(g *sourcev1.GitRepository) bool {
			return g.Status.Artifact != nil && strings.HasSuffix(g.Status.Artifact.Revision, broken)
		})
	t.Logf("push to GitRepository at the new commit through the Receiver: %v", time.Since(start).Round(10*time.Millisecond))
	waitCommitStatus(t, f, repo, broken, "kustomization/notified/", "failure")
	if v := configMapValue(c, target, "notified"); v != "v1" {
		t.Errorf("ConfigMap %q after the broken change, want v1 kept", v)
	}

	var ev notify.Event
	err = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		var ok bool
		ev, ok = sink.find(notify.SeverityError, broken)
		return ok, nil
	})
	if err != nil {
		t.Fatalf("no signed error event: %d events, %d unsigned", len(sink.events), sink.unsigned)
	}
	if ev.InvolvedObject.Kind != "Kustomization" || ev.InvolvedObject.Name != "notified" || ev.Metadata["env"] != "test" ||
		ev.Metadata["summary"] != "shop in test" {
		t.Errorf("error event %+v", ev)
	}
	if _, ok := sink.find(notify.SeverityInfo, first); !ok || sink.unsigned != 0 {
		t.Errorf("want the first commit's info event too, and no unsigned call (%d)", sink.unsigned)
	}
}
