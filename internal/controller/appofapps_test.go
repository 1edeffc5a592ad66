package controller

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/gittest"
)

// childApp is an Application manifest as it sits in a parent's folder.
func childApp(name, ns, repoURL, path string, wave int) string {
	return fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: %[1]s
  namespace: %[2]s
  annotations: {argocd.argoproj.io/sync-wave: "%[5]d"}
  finalizers: [resources-finalizer.argocd.argoproj.io]
spec:
  project: default
  source: {repoURL: %[3]s, targetRevision: HEAD, path: %[4]s}
  destination: {server: https://kubernetes.default.svc, namespace: %[2]s}
  syncPolicy: {automated: {prune: true, selfHeal: true}}
---
`, name, ns, repoURL, path, wave)
}

// TestAppOfApps: a parent Application whose folder holds two child
// Applications in waves 0 and 1. The children are created and reconciled;
// the second is created only once the first reports Healthy (its
// Deployment starts 2s late); the parent is Healthy when both are.
// Deleting the parent, which holds the resources finalizer, deletes the
// children and, through theirs, everything they applied.
func TestAppOfApps(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	url := gittest.FileURL(repo.Bare)
	repo.Commit("app of apps", map[string]string{
		"root/apps.yaml": childApp("child-a", ns, url, "a", 0) + childApp("child-b", ns, url, "b", 1),
		"a/deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: a}
spec:
  replicas: 1
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: a}, annotations: {sim.converge.dev/delay: 2s}}
    spec: {containers: [{name: a, image: example/a:1}]}
`,
		"b/config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {k: v}\n",
	})
	repo.Publish()
	create(t, c, &v1alpha1.AppProject{
		ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
		Spec: v1alpha1.AppProjectSpec{SourceRepos: []string{"*"},
			Destinations: []v1alpha1.ApplicationDestination{{Server: "*", Namespace: "*"}}},
	})

	// Watch the children: when did child-a first report Healthy, and when
	// did child-b appear?
	dyn := dynamic.NewForConfigOrDie(clustertest.RESTConfig(t))
	gvr := schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := dyn.Resource(gvr).Namespace(ns).Watch(wctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	go func() {
		for ev := range w.ResultChan() {
			o, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			h, _, _ := unstructured.NestedString(o.Object, "status", "health", "status")
			mu.Lock()
			switch {
			case o.GetName() == "child-b" && !contains(order, "child-b created"):
				order = append(order, "child-b created")
			case o.GetName() == "child-a" && h == "Healthy" && !contains(order, "child-a Healthy"):
				order = append(order, "child-a Healthy")
			}
			mu.Unlock()
		}
	}()

	root := &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: "root", Namespace: ns, Finalizers: []string{ResourcesFinalizer}},
		Spec: v1alpha1.ApplicationSpec{
			Project:     "default",
			Source:      &v1alpha1.ApplicationSource{RepoURL: url, TargetRevision: "HEAD", Path: "root"},
			Destination: v1alpha1.ApplicationDestination{Server: "https://kubernetes.default.svc", Namespace: ns},
			SyncPolicy:  &v1alpha1.SyncPolicy{Automated: &v1alpha1.SyncPolicyAutomated{Prune: true, SelfHeal: true}},
		},
	}
	create(t, c, root)
	for _, name := range []string{"root", "child-a", "child-b"} {
		waitNamed(t, c, ns, name, "Synced and Healthy", func(a *v1alpha1.Application) bool {
			return a.Status.Sync.Status == "Synced" && a.Status.Health.Status == "Healthy"
		})
	}
	mu.Lock()
	if strings.Join(order, ", ") != "child-a Healthy, child-b created" {
		t.Errorf("observed %v: child-b (wave 1) must be created after child-a (wave 0) is Healthy", order)
	}
	mu.Unlock()
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "b"}, &corev1.ConfigMap{}); err != nil {
		t.Errorf("child-b's ConfigMap: %v", err)
	}

	if err := c.Delete(ctx, root); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, o := range []client.Object{&v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Name: "root"}},
			&v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Name: "child-a"}},
			&v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Name: "child-b"}},
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "b"}}} {
			if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: o.GetName()}, o); !apierrors.IsNotFound(err) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatal("deleting root did not cascade to its children and their objects within 60s")
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func waitNamed(t testing.TB, c client.Client, ns, name, what string, cond func(*v1alpha1.Application) bool) *v1alpha1.Application {
	t.Helper()
	app := &v1alpha1.Application{}
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, app); err != nil {
			return false, nil
		}
		return cond(app), nil
	})
	if err != nil {
		t.Fatalf("waiting for %s to be %s: %v\nconditions: %+v, sync %s, health %s", name, what, err, app.Status.Conditions, app.Status.Sync.Status, app.Status.Health.Status)
	}
	return app
}
