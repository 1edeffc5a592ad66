package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/controller"
	"converge.dev/converge/internal/install"
	"converge.dev/converge/internal/server"
	"converge.dev/converge/internal/server/rbac"
	"converge.dev/converge/internal/server/session"
	"converge.dev/converge/internal/tree"
	"converge.dev/converge/internal/units"
)

func TestMain(m *testing.M) { clustertest.Main(m, clustertest.Options{Nodes: 1}) }

// world is a server over the real local cluster: the index fed by real
// informers, actions written to the real API server.
type world struct {
	c   client.Client
	url string
	idx *units.Index
}

var passwords = map[string]string{"viewer": "viewer-pass", "dev": "dev-pass", "boss": "boss-pass"}

// installCRDs installs converge's CRDs (both dialects') and returns the
// cluster's config.
func installCRDs(t *testing.T) *rest.Config {
	t.Helper()
	cfg := clustertest.RESTConfig(t)
	cc, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	crds, err := install.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := install.Apply(context.Background(), cc, crds); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// kubeClient installs the CRDs and returns a client of the cluster.
func kubeClient(t *testing.T) client.Client {
	t.Helper()
	cfg := installCRDs(t)
	scheme, _ := controller.Scheme()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func start(t *testing.T) *world {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg := installCRDs(t)
	scheme, _ := controller.Scheme()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	informers, err := cache.New(cfg, cache.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	workloads, err := cache.New(cfg, cache.Options{Scheme: scheme, DefaultTransform: tree.WorkloadTransform})
	if err != nil {
		t.Fatal(err)
	}
	idx := units.NewIndex()
	if err := server.Feed(ctx, informers, idx); err != nil {
		t.Fatal(err)
	}
	go informers.Start(ctx)
	go workloads.Start(ctx)
	informers.WaitForCacheSync(ctx)
	policy, err := os.ReadFile("testdata/policy.csv")
	if err != nil {
		t.Fatal(err)
	}
	enforcer, err := rbac.New(rbac.Policy{CSV: string(policy)})
	if err != nil {
		t.Fatal(err)
	}
	accounts := map[string]session.Account{}
	for name, pw := range passwords {
		var groups []string
		if name == "dev" {
			groups = []string{"team-a-devs"}
		}
		if accounts[name], err = session.NewAccount(pw, groups...); err != nil {
			t.Fatal(err)
		}
	}
	sessions, err := session.New(session.Options{Accounts: accounts})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Options{Index: idx, Cache: informers, Workloads: workloads, Client: c, APIReader: c, Sessions: sessions,
		Policy: func() *rbac.Enforcer { return enforcer }})
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &world{c: c, url: hs.URL, idx: idx}
}

// user is one browser: its cookies, and its CSRF token sent back.
type user struct {
	t    *testing.T
	name string
	hc   *http.Client
	base string
}

func (w *world) login(t *testing.T, name string) *user {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	u := &user{t: t, name: name, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second}, base: w.url}
	if name == "anonymous" {
		return u
	}
	code, body := u.do("POST", "/api/v1/session", map[string]string{"username": name, "password": passwords[name]})
	if code != http.StatusOK {
		t.Fatalf("login %s: %d %s", name, code, body)
	}
	return u
}

func (u *user) do(method, path string, body any) (int, []byte) {
	u.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, u.base+path, rd)
	base, _ := url.Parse(u.base)
	for _, c := range u.hc.Jar.Cookies(base) {
		if c.Name == session.CSRFCookie {
			req.Header.Set(session.CSRFHeader, c.Value)
		}
	}
	resp, err := u.hc.Do(req)
	if err != nil {
		u.t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

func (w *world) waitIndexed(t *testing.T, ref units.Ref) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		_, ok := w.idx.Get(ref)
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%v never indexed", ref)
	}
}

func app(ns, name, project string) *v1alpha1.Application {
	return &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.ApplicationSpec{Project: project, Source: &v1alpha1.ApplicationSource{RepoURL: "https://git.example.com/x.git", Path: name},
			Destination: v1alpha1.ApplicationDestination{Server: "https://kubernetes.default.svc", Namespace: ns}}}
}

// TestAccessMatrix: anonymous, read-only, project-scoped and admin users
// against every action on units of both dialects. Every disallowed cell
// is refused (401 without a login, 403 with one) and changes nothing;
// every allowed one is carried out.
func TestAccessMatrix(t *testing.T) {
	w := start(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	objs := map[string]client.Object{
		"team-a app": app(ns, "web", "team-a"),
		"team-b app": app(ns, "api", "team-b"),
		"flux kustomization": &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "infra"},
			Spec: kustomizev1.KustomizationSpec{Interval: metav1.Duration{Duration: time.Minute}, SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "fleet"}}},
	}
	for _, o := range objs {
		if err := w.c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	// A history entry to roll back to.
	for _, name := range []string{"web", "api"} {
		a := &v1alpha1.Application{}
		if err := w.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, a); err != nil {
			t.Fatal(err)
		}
		a.Status.History = []v1alpha1.RevisionHistory{{ID: 1, Revision: "0123456789abcdef0123456789abcdef01234567", DeployedAt: metav1.Now()}}
		if err := w.c.Status().Update(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	refs := map[string]units.Ref{"team-a app": {Kind: "Application", Namespace: ns, Name: "web"}, "team-b app": {Kind: "Application", Namespace: ns, Name: "api"},
		"flux kustomization": {Kind: "Kustomization", Namespace: ns, Name: "infra"}}
	for _, r := range refs {
		w.waitIndexed(t, r)
	}

	ops := map[string][]string{
		"team-a app":         {"list", "get", "events", "refresh", "sync", "rollback", "delete"},
		"team-b app":         {"list", "get", "events", "refresh", "sync", "rollback", "delete"},
		"flux kustomization": {"list", "get", "events", "refresh", "sync", "suspend", "resume", "delete"},
	}
	// Who may do what, read off the policy by hand.
	allowed := func(who, unit, op string) bool {
		reads := op == "list" || op == "get" || op == "events" || op == "refresh"
		switch who {
		case "boss":
			return true
		case "viewer":
			return reads
		case "dev":
			return unit == "team-a app" && (reads || op == "sync" || op == "rollback")
		}
		return false
	}
	cells, refused := 0, 0
	for _, who := range []string{"anonymous", "viewer", "dev", "boss"} {
		u := w.login(t, who)
		for _, unit := range []string{"team-a app", "team-b app", "flux kustomization"} {
			ref := refs[unit]
			path := fmt.Sprintf("/api/v1/units/%s/%s/%s", ref.Kind, ref.Namespace, ref.Name)
			for _, op := range ops[unit] {
				version := ""
				obj := objs[unit].DeepCopyObject().(client.Object)
				if err := w.c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err == nil {
					version = obj.GetResourceVersion()
				}
				var code int
				var body []byte
				switch op {
				case "list":
					code, body = u.do("GET", "/api/v1/units?namespace="+ns, nil)
					if code == http.StatusOK {
						var page units.Page
						json.Unmarshal(body, &page)
						code = http.StatusForbidden // unless listed
						for _, s := range page.Items {
							if s.Ref == ref {
								code = http.StatusOK
							}
						}
					}
				case "get":
					code, body = u.do("GET", path, nil)
				case "events":
					code, body = u.do("GET", path+"/events", nil)
				default:
					var in server.ActionRequest
					switch op {
					case "rollback":
						in.ID = 1
					case "delete":
						in.Confirm = ref.Name
					}
					code, body = u.do("POST", path+"/"+op, in)
				}
				cells++
				want := allowed(who, unit, op)
				switch {
				case want && code >= 300:
					t.Errorf("%s %s %s: %d %s, want it carried out", who, op, unit, code, body)
				case !want && who == "anonymous" && code != http.StatusUnauthorized:
					t.Errorf("%s %s %s: %d %s, want 401", who, op, unit, code, body)
				case !want && who != "anonymous" && code != http.StatusForbidden:
					t.Errorf("%s %s %s: %d %s, want 403", who, op, unit, code, body)
				case !want:
					refused++
					if bytes.Contains(body, []byte(ref.Name)) && op != "list" {
						t.Errorf("%s %s %s: the refusal names the unit: %s", who, op, unit, body)
					}
					if op != "list" && op != "get" && op != "events" && version != "" {
						after := objs[unit].DeepCopyObject().(client.Object)
						if err := w.c.Get(ctx, client.ObjectKeyFromObject(after), after); err != nil || after.GetResourceVersion() != version {
							t.Errorf("%s %s %s was refused but changed the object (%v)", who, op, unit, err)
						}
					}
				}
			}
		}
	}
	t.Logf("%d cells, %d of them refused", cells, refused)
}

// TestSessionGuards: a state-changing request without the login's CSRF
// token is refused; a forged session cookie is no login; logging out
// ends the session.
func TestSessionGuards(t *testing.T) {
	w := start(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	if err := w.c.Create(ctx, app(ns, "web", "team-a")); err != nil {
		t.Fatal(err)
	}
	ref := units.Ref{Kind: "Application", Namespace: ns, Name: "web"}
	w.waitIndexed(t, ref)
	boss := w.login(t, "boss")
	path := fmt.Sprintf("/api/v1/units/Application/%s/web/refresh", ns)

	req, _ := http.NewRequest("POST", w.url+path, nil) // no CSRF header
	resp, err := boss.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a POST without the CSRF token: %d, want 403", resp.StatusCode)
	}

	forged, _ := cookiejar.New(nil)
	base, _ := url.Parse(w.url)
	forged.SetCookies(base, []*http.Cookie{{Name: session.SessionCookie, Value: "eyJ1c2VyIjoiYm9zcyJ9"}})
	mallory := &user{t: t, name: "mallory", hc: &http.Client{Jar: forged}, base: w.url}
	if code, _ := mallory.do("GET", "/api/v1/units", nil); code != http.StatusUnauthorized {
		t.Errorf("a forged session cookie: %d, want 401", code)
	}
	if code, _ := boss.do("POST", "/api/v1/session", map[string]string{"username": "boss", "password": "wrong"}); code != http.StatusUnauthorized {
		t.Errorf("a wrong password: %d, want 401", code)
	}
	if code, body := boss.do("POST", path, nil); code != http.StatusAccepted {
		t.Errorf("refresh with the token: %d %s", code, body)
	}
	got := &v1alpha1.Application{}
	if err := w.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, got); err != nil || got.Annotations["argocd.argoproj.io/refresh"] != "normal" {
		t.Errorf("the refresh did not reach the Application: %v %v", got.Annotations, err)
	}
	// The page may run only its own scripts.
	resp, err = http.Get(w.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("the page's Content-Security-Policy: %q", csp)
	}
	if code, _ := boss.do("DELETE", "/api/v1/session", nil); code != http.StatusNoContent {
		t.Errorf("logout: %d", code)
	}
	if code, _ := boss.do("GET", "/api/v1/units", nil); code != http.StatusUnauthorized {
		t.Errorf("after logout: %d, want 401", code)
	}
	// Guessing: after 5 wrong passwords (one above) the name is refused,
	// the right password too, with 429 and a Retry-After.
	for range 4 {
		boss.do("POST", "/api/v1/session", map[string]string{"username": "boss", "password": "guess"})
	}
	req, _ = http.NewRequest("POST", w.url+"/api/v1/session", strings.NewReader(`{"username":"boss","password":"`+passwords["boss"]+`"}`))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("the right password after 5 failures: %d (Retry-After %q), want 429", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	w.login(t, "viewer") // another name logs in
}

// TestPipelinePage: a promotion Pipeline is listed with the units, and
// its page shows each stage's digest, bake and the promotion into it
// with its gates and pull request link.
func TestPipelinePage(t *testing.T) {
	w := start(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	p := &convergev1.Pipeline{}
	doc := strings.ReplaceAll(`apiVersion: converge.dev/v1alpha1
kind: Pipeline
metadata: {name: orders-api, namespace: NS}
spec:
  repo: {url: 'https://git.example.com/deploy.git', baseBranch: main, forge: gitea, secretRef: {name: forge-token}}
  artifacts: [{name: app, image: registry.example.com/orders-api}]
  stages:
  - {name: dev, targets: [{kind: Application, namespace: NS, name: dev}], locator: {path: dev/kustomization.yaml, kind: kustomize-images}}
  - {name: staging, from: dev, targets: [{kind: Application, namespace: NS, name: staging}], locator: {path: staging/kustomization.yaml, kind: kustomize-images}}
`, "NS", ns)
	if err := yaml.UnmarshalStrict([]byte(doc), p); err != nil {
		t.Fatal(err)
	}
	if err := w.c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	pr := &convergev1.Promotion{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders-api-staging-1"},
		Spec: convergev1.PromotionSpec{Pipeline: "orders-api", Stage: "staging", Reason: "auto",
			Freight: convergev1.Freight{ID: "f1", Artifacts: []convergev1.FreightArtifact{{Name: "app", Image: "registry.example.com/orders-api", Digest: "sha256:" + strings.Repeat("a", 64)}}}}}
	if err := w.c.Create(ctx, pr); err != nil {
		t.Fatal(err)
	}
	pr.Status = convergev1.PromotionStatus{Phase: "Gating", PR: &convergev1.PromotionPR{Number: 7, URL: "http://forge.example/deploy/pulls/7", Branch: "b", Head: "h"},
		Gates: []convergev1.GateStatus{{Name: "bake", Requirement: "2m in dev", Phase: "Passed"}, {Name: "approval", Requirement: "1 review", Phase: "Pending", Message: "waiting for a reviewer"}}}
	if err := w.c.Status().Update(ctx, pr); err != nil {
		t.Fatal(err)
	}
	since := metav1.Now()
	p.Status.Stages = []convergev1.StageStatus{{Name: "dev", Digests: map[string]string{"app": "sha256:" + strings.Repeat("a", 64)}, Healthy: true, HealthySince: &since},
		{Name: "staging", Healthy: true, HealthySince: &since, Promotion: pr.Name}}
	if err := w.c.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	ref := units.Ref{Kind: "Pipeline", Namespace: ns, Name: "orders-api"}
	w.waitIndexed(t, ref)
	boss := w.login(t, "boss")
	var d server.Detail
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		code, body := boss.do("GET", "/api/v1/units/Pipeline/"+ns+"/orders-api", nil)
		if code != http.StatusOK {
			return false, nil
		}
		d = server.Detail{}
		json.Unmarshal(body, &d)
		return len(d.Stages) == 2 && d.Stages[1].Promotion != nil && d.Stages[1].Promotion.PR != "", nil
	})
	if err != nil {
		t.Fatalf("the Pipeline's page: %+v", d)
	}
	if d.Unit.Sync != "OutOfSync" || !strings.Contains(d.Unit.Message, "promotion orders-api-staging-1 into staging") {
		t.Errorf("the Pipeline's row: %+v", d.Unit)
	}
	st := d.Stages[1].Promotion
	if st.Phase != "Gating" || len(st.Gates) != 2 || st.Gates[1].Message != "waiting for a reviewer" || st.PR != "http://forge.example/deploy/pulls/7" {
		t.Errorf("the promotion into staging: %+v", st)
	}
	if d.Stages[0].Digests["app"] == "" || !d.Stages[0].Healthy {
		t.Errorf("dev: %+v", d.Stages[0])
	}
	// The dev team sees no Pipeline: pipelines are not theirs.
	if code, _ := w.login(t, "dev").do("GET", "/api/v1/units/Pipeline/"+ns+"/orders-api", nil); code != http.StatusForbidden {
		t.Errorf("the dev team read the Pipeline: %d", code)
	}
}
