package controller

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	imagev1 "converge.dev/converge/internal/api/fluxcd/image/v1"
	notificationv1 "converge.dev/converge/internal/api/fluxcd/notification/v1"
	"converge.dev/converge/internal/api/fluxcd/notification/v1beta3"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/forgetest"
)

// applyDocs creates every document of a file as written (unknown fields
// kept), after replacing words.
func applyDocs(t *testing.T, path string, replace ...string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := setup(t)
	for _, doc := range strings.Split(strings.NewReplacer(replace...).Replace(string(data)), "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if u.GetKind() == "" {
			continue // the header comment
		}
		if err := c.Create(context.Background(), u); err != nil {
			t.Fatalf("%s: %s %s: %v", path, u.GetKind(), u.GetName(), err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), u) })
	}
}

// TestFluxDocsImageAutomation: the example of Flux's
// ImageUpdateAutomation documentation, unchanged but for the Git URL and
// the registry, picks 5.0.x's latest tag and commits it at the marker
// with Flux's default message and author.
func TestFluxDocsImageAutomation(t *testing.T) {
	c, _ := setup(t)
	f := forgetest.Start(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	reg := &testRegistry{host: strings.TrimPrefix(srv.URL, "http://")}
	for _, tag := range []string{"5.0.0", "5.0.3", "5.1.0", "6.0.0"} {
		reg.push(t, "stefanprodan/podinfo", tag)
	}
	repo := f.CreateRepo(t, "example")
	repo.Push("initial", map[string]string{"deploy/podinfo.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
spec:
  template:
    spec:
      containers:
        - name: podinfod
          image: %s/stefanprodan/podinfo:5.0.0 # {"$imagepolicy": "default:podinfo-policy"}
`, reg.host)})
	// The docs' GitRepository has no secretRef: the push credentials are
	// in the URL, which Git allows.
	authURL := strings.Replace(repo.CloneURL, "http://", "http://"+f.User+":"+f.Token+"@", 1)
	applyDocs(t, "testdata/flux/docs/image-automation.yaml", "https://github.com/fluxcd/example", authURL, "ghcr.io", reg.host)

	key := types.NamespacedName{Namespace: "default", Name: "podinfo-update"}
	a := waitObject(t, c, key, &imagev1.ImageUpdateAutomation{}, "pushed", func(a *imagev1.ImageUpdateAutomation) bool { return a.Status.LastPushCommit != "" })
	head, msg := branchHead(t, f, repo)
	if a.Status.LastPushCommit != head || strings.TrimSpace(msg) != defaultCommitMessage {
		t.Errorf("main at %s %q; automation pushed %s", head, msg, a.Status.LastPushCommit)
	}
	if p := a.Status.ObservedPolicies["podinfo-policy"]; p.Tag != "5.0.3" {
		t.Errorf("observed policies %+v, want podinfo-policy at 5.0.3", a.Status.ObservedPolicies)
	}
	var file struct {
		Content string `json:"content"`
	}
	f.API(t, "GET", "/repos/"+repo.Owner+"/"+repo.Name+"/contents/deploy/podinfo.yaml", nil, &file)
	if want := reg.host + "/stefanprodan/podinfo:5.0.3 # {\"$imagepolicy\": \"default:podinfo-policy\"}"; !strings.Contains(decodeB64(t, file.Content), want) {
		t.Errorf("deploy/podinfo.yaml:\n%s\nwant %s", decodeB64(t, file.Content), want)
	}
	var commit struct {
		Commit struct {
			Author struct{ Name, Email string } `json:"author"`
		} `json:"commit"`
	}
	f.API(t, "GET", "/repos/"+repo.Owner+"/"+repo.Name+"/git/commits/"+head, nil, &commit)
	if au := commit.Commit.Author; au.Name != "fluxcdbot" || au.Email != "fluxcdbot@users.noreply.github.com" {
		t.Errorf("author %+v", au)
	}
}

func decodeB64(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// slackSink keeps the Slack messages posted to it.
type slackSink struct {
	mu   sync.Mutex
	msgs []slackPost
}

type slackPost struct {
	Auth        string
	Channel     string `json:"channel"`
	Attachments []struct {
		Color      string `json:"color"`
		AuthorName string `json:"author_name"`
		Text       string `json:"text"`
		Fields     []struct {
			Title string `json:"title"`
			Value string `json:"value"`
		} `json:"fields"`
	} `json:"attachments"`
}

func (s *slackSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var m slackPost
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	m.Auth = r.Header.Get("Authorization")
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	s.mu.Unlock()
}

func (s *slackSink) about(author string) (slackPost, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.msgs {
		if len(m.Attachments) == 1 && m.Attachments[0].AuthorName == author {
			return m, true
		}
	}
	return slackPost{}, false
}

// TestFluxDocsNotifications: the Provider and Alert of Flux's Alert
// documentation, unchanged but for the Provider's address, send an
// error event as a Slack message with the Alert's metadata; the GitHub
// Receiver of its Receiver documentation, unchanged, takes a push signed
// as GitHub signs it and asks its GitRepository for a reconcile.
func TestFluxDocsNotifications(t *testing.T) {
	c, _ := setup(t)
	f := forgetest.Start(t)
	ensureNamespace(t, c, "flux-system")
	sink := &slackSink{}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	repo := f.CreateRepo(t, "fleet")
	repo.Push("initial", map[string]string{"README.md": "fleet\n"})
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "slack-bot-token", Namespace: "flux-system"}, StringData: map[string]string{"token": "xoxb-docs-test"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "receiver-token", Namespace: "flux-system"}, StringData: map[string]string{"token": "receiver-docs-s3cret"}},
	} {
		create(t, c, s)
		t.Cleanup(func() { _ = c.Delete(context.Background(), s) })
	}
	src := &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "flux-system", Namespace: "flux-system"},
		Spec: sourcev1.GitRepositorySpec{URL: repo.CloneURL, Interval: metav1.Duration{Duration: 10 * time.Minute}}}
	create(t, c, src)
	t.Cleanup(func() { _ = c.Delete(context.Background(), src) })
	applyDocs(t, "testdata/flux/docs/notifications.yaml", "https://slack.com/api/chat.postMessage", srv.URL+"/api/chat.postMessage")

	ns := "flux-system"
	waitObject(t, c, types.NamespacedName{Namespace: ns, Name: "slack-bot"}, &v1beta3.Provider{}, "ready", func(p *v1beta3.Provider) bool { return isReady(p.Status.Conditions) })
	waitObject(t, c, types.NamespacedName{Namespace: ns, Name: "slack"}, &v1beta3.Alert{}, "ready", func(a *v1beta3.Alert) bool { return isReady(a.Status.Conditions) })
	rc := waitObject(t, c, types.NamespacedName{Namespace: ns, Name: "github-receiver"}, &notificationv1.Receiver{}, "ready",
		func(r *notificationv1.Receiver) bool { return isReady(r.Status.Conditions) })

	broken := &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "docs-broken", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: f.URL + f.User + "/no-such-repo.git", Interval: metav1.Duration{Duration: 10 * time.Minute}}}
	create(t, c, broken)
	t.Cleanup(func() { _ = c.Delete(context.Background(), broken) })
	var msg slackPost
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		var ok bool
		msg, ok = sink.about("gitrepository/docs-broken.flux-system")
		return ok, nil
	})
	if err != nil {
		t.Fatalf("no Slack message about the broken GitRepository: %+v", sink.msgs)
	}
	fields := map[string]string{}
	for _, fl := range msg.Attachments[0].Fields {
		fields[fl.Title] = fl.Value
	}
	if msg.Auth != "Bearer xoxb-docs-test" || msg.Channel != "general" || msg.Attachments[0].Color != "danger" ||
		fields["summary"] != "Cluster addons impacted" || fields["cluster"] != "my-cluster" {
		t.Errorf("Slack message %+v (fields %v)", msg, fields)
	}

	body := []byte(`{"ref":"refs/heads/main","repository":{"full_name":"org/fleet"}}`)
	m := hmac.New(sha256.New, []byte("receiver-docs-s3cret"))
	m.Write(body)
	req, _ := http.NewRequest(http.MethodPost, strings.TrimSuffix(webhookReceiver(t), WebhookPath)+rc.Status.WebhookPath, bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("signed push: %d", resp.StatusCode)
	}
	waitObject(t, c, types.NamespacedName{Namespace: ns, Name: "flux-system"}, &sourcev1.GitRepository{}, "reconciled on request",
		func(g *sourcev1.GitRepository) bool {
			return g.Status.LastHandledReconcileAt != "" && g.Status.LastHandledReconcileAt == g.Annotations[ReconcileRequestAnnotation]
		})
}
