package controller

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	imagev1 "converge.dev/converge/internal/api/fluxcd/image/v1"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/forgetest"
)

// testRegistry is an in-process OCI registry that wants basic auth.
type testRegistry struct {
	host, user, pass string
	requests         atomic.Int64
}

func startRegistry(t *testing.T) *testRegistry {
	t.Helper()
	reg := &testRegistry{user: "ci", pass: "registry-s3cret"}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reg.requests.Add(1)
		if u, p, ok := r.BasicAuth(); !ok || u != reg.user || p != reg.pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="converge-test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	reg.host = strings.TrimPrefix(srv.URL, "http://")
	return reg
}

// push pushes a random image as repo:tag and returns its digest.
func (reg *testRegistry) push(t *testing.T, repo, tag string) string {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(reg.host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: reg.user, Password: reg.pass})); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// dockerConfig is a kubernetes.io/dockerconfigjson Secret for host.
func dockerConfig(ns, name, host, user, pass string) *corev1.Secret {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Type: corev1.SecretTypeDockerConfigJson,
		StringData: map[string]string{corev1.DockerConfigJsonKey: `{"auths":{"` + host + `":{"auth":"` + auth + `"}}}`}}
}

// waitObject polls obj (by key) until cond holds.
func waitObject[T client.Object](t *testing.T, c client.Client, key types.NamespacedName, obj T, what string, cond func(T) bool) T {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, key, obj); err != nil {
			return false, nil
		}
		return cond(obj), nil
	})
	if err != nil {
		out, _ := yaml.Marshal(obj)
		t.Fatalf("waiting for %T %s to be %s: %v\n%s", obj, key, what, err, out)
	}
	return obj
}

// branchHead is main's commit and message on the forge.
func branchHead(t *testing.T, f *forgetest.Forge, repo *forgetest.Repo) (id, message string) {
	t.Helper()
	var b struct {
		Commit struct {
			ID      string `json:"id"`
			Message string `json:"message"`
		} `json:"commit"`
	}
	f.API(t, "GET", "/repos/"+repo.Owner+"/"+repo.Name+"/branches/main", nil, &b)
	return b.Commit.ID, b.Commit.Message
}

func readyFalseWith(conds []metav1.Condition, s string) bool {
	c := meta.FindStatusCondition(conds, flux.ReadyCondition)
	return c != nil && c.Status == metav1.ConditionFalse && strings.Contains(c.Message, s)
}

const imageDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: %s/shop/web:app-1.0.0 # {"$imagepolicy": "%s:web"}
`

// TestImageAutomation is issue 20's first three must-shows: an
// ImageRepository scans an in-process registry that wants credentials,
// an ImagePolicy (semver 1.x over the tags a filterTags pattern keeps)
// picks the tag and its digest, an ImageUpdateAutomation commits
// tag@digest at the marker with the configured message and pushes it to
// Gitea, and the Kustomization applies it; a newer tag moves the digest
// through the chain; a marker naming a missing policy, a malformed
// filter and a registry that refuses the credentials are each named,
// and nothing is committed.
func TestImageAutomation(t *testing.T) {
	c, _ := setup(t)
	f := forgetest.Start(t)
	reg := startRegistry(t)
	ns, target := clustertest.Namespace(t), clustertest.Namespace(t)
	d100 := reg.push(t, "shop/web", "app-1.0.0")
	d110 := reg.push(t, "shop/web", "app-1.1.0")
	reg.push(t, "shop/web", "app-2.0.0")
	reg.push(t, "shop/web", "web-1.8.0") // semver 1.x, but not this app's
	reg.push(t, "shop/web", "app-1.1.0.sig")

	repo := f.CreateRepo(t, "images")
	repo.Push("initial", map[string]string{
		"deploy/deployment.yaml":    fmt.Sprintf(imageDeployment, reg.host, ns),
		"deploy/kustomization.yaml": "resources: [deployment.yaml]\n",
	})
	create(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "git", Namespace: ns},
		StringData: map[string]string{"username": f.User, "password": f.Token}})
	create(t, c, dockerConfig(ns, "registry", reg.host, reg.user, reg.pass))
	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "images", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: repo.CloneURL, Ref: &sourcev1.GitRepositoryRef{Branch: "main"},
			SecretRef: &sourcev1.LocalObjectReference{Name: "git"}, Interval: metav1.Duration{Duration: 10 * time.Minute}}})
	create(t, c, &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "images"},
			Path: "./deploy", TargetNamespace: target, Prune: true, Interval: metav1.Duration{Duration: 10 * time.Minute}}})
	create(t, c, &imagev1.ImageRepository{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: imagev1.ImageRepositorySpec{Image: reg.host + "/shop/web", Insecure: true, Interval: metav1.Duration{Duration: 2 * time.Second},
			SecretRef: &imagev1.LocalObjectReference{Name: "registry"}}})
	create(t, c, &imagev1.ImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: imagev1.ImagePolicySpec{ImageRepositoryRef: imagev1.NamespacedObjectReference{Name: "web"},
			Policy:                 imagev1.ImagePolicyChoice{SemVer: &imagev1.SemVerPolicy{Range: "1.x"}},
			FilterTags:             &imagev1.TagFilter{Pattern: `^app-(?P<version>\d+\.\d+\.\d+)$`, Extract: "$version"},
			DigestReflectionPolicy: imagev1.ReflectIfNotPresent}})
	create(t, c, &imagev1.ImageUpdateAutomation{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: imagev1.ImageUpdateAutomationSpec{SourceRef: imagev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "images"},
			Interval: metav1.Duration{Duration: 2 * time.Second}, Update: &imagev1.UpdateStrategy{Path: "./deploy", Strategy: "Setters"},
			GitSpec: &imagev1.GitSpec{Checkout: &imagev1.GitCheckoutSpec{Reference: imagev1.GitRepositoryRef{Branch: "main"}},
				Push: &imagev1.PushSpec{Branch: "main"},
				Commit: imagev1.CommitSpec{Author: imagev1.CommitUser{Name: "image-bot", Email: "bot@converge.dev"},
					MessageTemplate:       "chore({{ .Values.env }}): {{ range .Changed.Changes }}{{ .OldValue }} -> {{ .NewValue }}{{ end }}",
					MessageTemplateValues: map[string]string{"env": "dev"}}}}})

	key := types.NamespacedName{Namespace: ns, Name: "web"}
	ir := waitObject(t, c, key, &imagev1.ImageRepository{}, "scanned", func(r *imagev1.ImageRepository) bool { return isReady(r.Status.Conditions) })
	if r := ir.Status.LastScanResult; r == nil || r.TagCount != 4 || ir.Status.CanonicalImageName != reg.host+"/shop/web" {
		t.Errorf("scan: %+v (canonical %q), want 4 tags (the .sig left out)", r, ir.Status.CanonicalImageName)
	}
	pol := waitObject(t, c, key, &imagev1.ImagePolicy{}, "picked", func(p *imagev1.ImagePolicy) bool { return p.Status.LatestRef != nil })
	if want := (imagev1.ImageRef{Name: reg.host + "/shop/web", Tag: "app-1.1.0", Digest: d110}); *pol.Status.LatestRef != want {
		t.Errorf("latestRef %+v, want %+v", *pol.Status.LatestRef, want)
	}
	want := reg.host + "/shop/web:app-1.1.0@" + d110
	waitObject(t, c, types.NamespacedName{Namespace: target, Name: "web"}, &appsv1.Deployment{}, "at "+want,
		func(d *appsv1.Deployment) bool { return d.Spec.Template.Spec.Containers[0].Image == want })
	head, msg := branchHead(t, f, repo)
	if wantMsg := "chore(dev): " + reg.host + "/shop/web:app-1.0.0 -> " + want; strings.TrimSpace(msg) != wantMsg {
		t.Errorf("commit message %q, want %q", msg, wantMsg)
	}
	a := waitObject(t, c, key, &imagev1.ImageUpdateAutomation{}, "pushed", func(a *imagev1.ImageUpdateAutomation) bool { return a.Status.LastPushCommit != "" })
	if a.Status.LastPushCommit != head || a.Status.ObservedPolicies["web"].Digest != d110 {
		t.Errorf("automation status: push %s (main at %s), policies %+v", a.Status.LastPushCommit, head, a.Status.ObservedPolicies)
	}
	waitKustomization(t, c, ns, "web", "at the automation's commit", func(k *kustomizev1.Kustomization) bool {
		return strings.HasSuffix(k.Status.LastAppliedRevision, head)
	})
	if a.Status.ObservedPolicies["web"].Digest == d100 {
		t.Errorf("the policy kept 1.0.0's digest")
	}

	// A newer tag: through registry scan, policy, commit, source and apply.
	start := time.Now()
	d120 := reg.push(t, "shop/web", "app-1.2.0")
	want = reg.host + "/shop/web:app-1.2.0@" + d120
	waitObject(t, c, types.NamespacedName{Namespace: target, Name: "web"}, &appsv1.Deployment{}, "at "+want,
		func(d *appsv1.Deployment) bool { return d.Spec.Template.Spec.Containers[0].Image == want })
	t.Logf("registry push to applied: %v (ImageRepository interval 2s)", time.Since(start).Round(10*time.Millisecond))

	// Steady state: rescans that find the same tags write nothing.
	objs := []client.Object{&imagev1.ImageRepository{}, &imagev1.ImagePolicy{}, &imagev1.ImageUpdateAutomation{}}
	versions := func() []string {
		var out []string
		for _, o := range objs {
			if err := c.Get(context.Background(), key, o); err != nil {
				t.Fatal(err)
			}
			out = append(out, o.GetResourceVersion())
		}
		return out
	}
	time.Sleep(3 * time.Second) // the last status writes of the chain, and the clone that sees the pushed head
	before, reqs := versions(), reg.requests.Load()
	cloned, unchanged := automationRuns("cloned"), automationRuns("unchanged")
	time.Sleep(7 * time.Second)
	if after := versions(); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("resource versions moved in steady state: %v to %v", before, after)
	}
	// The automation's 2s runs ask Git for the head and clone nothing.
	if c, u := automationRuns("cloned")-cloned, automationRuns("unchanged")-unchanged; c != 0 || u < 2 {
		t.Errorf("steady state: %v runs cloned, %v found nothing new; want 0 and at least 2", c, u)
	}
	t.Logf("steady state: %d registry requests in 7s of 2s rescans, %v automation runs without a clone, no writes",
		reg.requests.Load()-reqs, automationRuns("unchanged")-unchanged)

	// Bad input, each named, and nothing committed.
	t.Run("missing policy", func(t *testing.T) {
		repo.Push("a marker naming no policy", map[string]string{"deploy/extra.yaml": "image: x:1 # {\"$imagepolicy\": \"" + ns + ":nope\"}\n"})
		before, _ := branchHead(t, f, repo)
		requestReconcile(t, c, &imagev1.ImageUpdateAutomation{}, key)
		waitObject(t, c, key, &imagev1.ImageUpdateAutomation{}, "failed on the marker", func(a *imagev1.ImageUpdateAutomation) bool {
			return readyFalseWith(a.Status.Conditions, "deploy/extra.yaml:1: marker "+ns+":nope: ImagePolicy "+ns+"/nope does not exist")
		})
		if now, _ := branchHead(t, f, repo); now != before {
			t.Errorf("main moved from %s to %s: something was committed", before, now)
		}
		repo.Push("remove the bad marker", map[string]string{"deploy/extra.yaml": ""})
	})
	t.Run("malformed filter", func(t *testing.T) {
		bad := types.NamespacedName{Namespace: ns, Name: "bad-filter"}
		create(t, c, &imagev1.ImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: bad.Name, Namespace: ns},
			Spec: imagev1.ImagePolicySpec{ImageRepositoryRef: imagev1.NamespacedObjectReference{Name: "web"},
				Policy:     imagev1.ImagePolicyChoice{SemVer: &imagev1.SemVerPolicy{Range: "1.x"}},
				FilterTags: &imagev1.TagFilter{Pattern: `^app-(?P<version>`, Extract: "$version"}}})
		waitObject(t, c, bad, &imagev1.ImagePolicy{}, "failed on the pattern", func(p *imagev1.ImagePolicy) bool {
			return readyFalseWith(p.Status.Conditions, "spec.filterTags.pattern") && meta.IsStatusConditionTrue(p.Status.Conditions, flux.StalledCondition)
		})
		repo.Push("a marker of the broken policy", map[string]string{"deploy/bad.yaml": "image: x:1 # {\"$imagepolicy\": \"" + ns + ":bad-filter\"}\n"})
		before, _ := branchHead(t, f, repo)
		requestReconcile(t, c, &imagev1.ImageUpdateAutomation{}, key)
		waitObject(t, c, key, &imagev1.ImageUpdateAutomation{}, "failed on the policy", func(a *imagev1.ImageUpdateAutomation) bool {
			return readyFalseWith(a.Status.Conditions, "deploy/bad.yaml:1: marker "+ns+":bad-filter: ImagePolicy "+ns+"/bad-filter is not ready: invalid policy: spec.filterTags.pattern")
		})
		if now, _ := branchHead(t, f, repo); now != before {
			t.Errorf("main moved from %s to %s: something was committed", before, now)
		}
		repo.Push("remove the broken marker", map[string]string{"deploy/bad.yaml": ""})
	})
	t.Run("registry auth failure", func(t *testing.T) {
		create(t, c, dockerConfig(ns, "wrong", reg.host, reg.user, "not-the-password"))
		badKey := types.NamespacedName{Namespace: ns, Name: "denied"}
		create(t, c, &imagev1.ImageRepository{ObjectMeta: metav1.ObjectMeta{Name: badKey.Name, Namespace: ns},
			Spec: imagev1.ImageRepositorySpec{Image: reg.host + "/shop/web", Insecure: true, Interval: metav1.Duration{Duration: time.Minute},
				SecretRef: &imagev1.LocalObjectReference{Name: "wrong"}}})
		r := waitObject(t, c, badKey, &imagev1.ImageRepository{}, "refused", func(r *imagev1.ImageRepository) bool {
			return readyFalseWith(r.Status.Conditions, "UNAUTHORIZED")
		})
		msg := meta.FindStatusCondition(r.Status.Conditions, flux.ReadyCondition).Message
		if !strings.Contains(msg, "image "+reg.host+"/shop/web: list tags") || strings.Contains(msg, "not-the-password") {
			t.Errorf("message %q: want the image named and no password", msg)
		}
		create(t, c, &imagev1.ImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: badKey.Name, Namespace: ns},
			Spec: imagev1.ImagePolicySpec{ImageRepositoryRef: imagev1.NamespacedObjectReference{Name: badKey.Name},
				Policy: imagev1.ImagePolicyChoice{SemVer: &imagev1.SemVerPolicy{Range: "1.x"}}}})
		waitObject(t, c, badKey, &imagev1.ImagePolicy{}, "waiting on its repository", func(p *imagev1.ImagePolicy) bool {
			return readyFalseWith(p.Status.Conditions, "has not been scanned yet") && p.Status.LatestRef == nil
		})
		repo.Push("a marker of the refused repository", map[string]string{"deploy/denied.yaml": "image: x:1 # {\"$imagepolicy\": \"" + ns + ":denied\"}\n"})
		before, _ := branchHead(t, f, repo)
		requestReconcile(t, c, &imagev1.ImageUpdateAutomation{}, key)
		waitObject(t, c, key, &imagev1.ImageUpdateAutomation{}, "failed on the policy", func(a *imagev1.ImageUpdateAutomation) bool {
			return readyFalseWith(a.Status.Conditions, "ImagePolicy "+ns+"/denied is not ready")
		})
		if now, _ := branchHead(t, f, repo); now != before {
			t.Errorf("main moved from %s to %s: something was committed", before, now)
		}
	})
}

// automationRuns is converge_image_automation_runs_total{result}.
func automationRuns(result string) float64 {
	return counter("converge_image_automation_runs_total", map[string]string{"result": result})
}

// requestReconcile sets Flux's reconcile request annotation, as `flux
// reconcile` does.
func requestReconcile(t *testing.T, c client.Client, obj client.Object, key types.NamespacedName) {
	t.Helper()
	obj.SetNamespace(key.Namespace)
	obj.SetName(key.Name)
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+ReconcileRequestAnnotation+`":"`+time.Now().Format(time.RFC3339Nano)+`"}}}`))
	if err := c.Patch(context.Background(), obj, patch); err != nil {
		t.Fatal(err)
	}
}
