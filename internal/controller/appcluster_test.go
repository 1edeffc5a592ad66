package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/controlplane"
	"converge.dev/converge/internal/dialect/argocd"
	"converge.dev/converge/internal/localcluster"
)

// TestApplicationOnRegisteredCluster: a second real cluster, registered
// by an Argo CD cluster Secret (what `converge cluster register` writes),
// is an Application's destination by name. Its objects, its namespace
// (CreateNamespace) and its inventory are made there, none here; a
// removal from Git prunes there; deleting the Application (resources
// finalizer) deletes there. A destination no Secret registers, and one
// the project does not allow, are InvalidSpecErrors in Argo CD's words,
// and nothing is applied anywhere.
func TestApplicationOnRegisteredCluster(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ensureNamespace(t, c, "argocd")
	ns := clustertest.Namespace(t)
	remote, err := localcluster.Start(ctx, localcluster.Options{Name: "east", Dir: t.TempDir(), Build: controlplane.Options{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = remote.Stop(context.Background()) })
	rcfg, err := remote.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	s, _ := Scheme()
	rc, err := client.New(rcfg, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	clusterName := "east-" + ns
	sec, err := argocd.ClusterSecret("argocd", clusterName, rcfg)
	if err != nil {
		t.Fatal(err)
	}
	create(t, c, sec)
	project := "east-only-" + ns
	create(t, c, &v1alpha1.AppProject{ObjectMeta: metav1.ObjectMeta{Name: project, Namespace: "argocd"},
		Spec: v1alpha1.AppProjectSpec{SourceRepos: []string{"*"}, Destinations: []v1alpha1.ApplicationDestination{{Name: clusterName, Namespace: "*"}},
			ClusterResourceWhitelist: []metav1.GroupKind{{Group: "", Kind: "Namespace"}}}})
	repo.Commit("remote app", map[string]string{
		"remote/greeting.yaml": configMapYAML("greeting", "hello"),
		"remote/other.yaml":    configMapYAML("other", "x"),
	})
	repo.Publish()
	application := func(name string, dest map[string]any) *unstructured.Unstructured {
		a := argoApp(name, ns, project, map[string]any{"repoURL": "file://" + repo.Bare, "path": "remote"})
		dest["namespace"] = ns
		_ = unstructured.SetNestedMap(a.Object, dest, "spec", "destination")
		_ = unstructured.SetNestedStringSlice(a.Object, []string{"CreateNamespace=true"}, "spec", "syncPolicy", "syncOptions")
		return a
	}
	name := "east-" + ns
	a := application(name, map[string]any{"name": clusterName})
	a.SetFinalizers([]string{ResourcesFinalizer})
	create(t, c, a)
	getApp(t, c, name, "Synced and Healthy", func(a *v1alpha1.Application) bool {
		return a.Status.Sync.Status == "Synced" && a.Status.Health.Status == "Healthy"
	})
	if configMapValue(rc, ns, "greeting") != "hello" {
		t.Fatal("the ConfigMap is not in the destination cluster")
	}
	if configMapValue(c, ns, "greeting") != "" {
		t.Fatal("the ConfigMap was applied to the cluster converge runs in")
	}
	unit := argocd.UnitName(&v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: "argocd", Name: name}})
	remoteCC, err := cluster.New(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	if inv, err := remoteCC.LoadInventory(ctx, unit); err != nil || len(inv.Objects) != 2 {
		t.Errorf("the destination cluster's inventory of %s: %+v, %v", unit, inv, err)
	}

	// A removal from Git prunes in the destination cluster.
	repo.Commit("drop other", map[string]string{"remote/other.yaml": ""})
	repo.Publish()
	refresh := func(name string) {
		t.Helper()
		// A refresh still pending would absorb this one: the controller
		// clears the annotation after it acted on the last.
		app := &v1alpha1.Application{}
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			err := c.Get(ctx, types.NamespacedName{Namespace: "argocd", Name: name}, app)
			return err == nil && app.Annotations[RefreshAnnotation] == "", nil
		})
		if err != nil {
			t.Fatalf("%s: the last refresh was never taken", name)
		}
		app = &v1alpha1.Application{}
		app.Namespace, app.Name = "argocd", name
		if err := c.Patch(ctx, app, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+RefreshAnnotation+`":"hard"}}}`))); err != nil {
			t.Fatal(err)
		}
	}
	refresh(name)
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		return configMapValue(rc, ns, "other") == "", nil
	})
	if err != nil {
		t.Fatal("a ConfigMap removed from Git was not pruned in the destination cluster")
	}

	// Break-glass on the cluster: automated syncs to it wait, and the
	// Application says why; lifting it lets the change through.
	glass := func(reason string) {
		t.Helper()
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, argocd.BreakGlassAnnotation, reason)
		if reason == "" {
			patch = fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, argocd.BreakGlassAnnotation)
		}
		if err := c.Patch(ctx, sec, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
			t.Fatal(err)
		}
	}
	glass("INC-42: hands on east")
	repo.Commit("change greeting", map[string]string{"remote/greeting.yaml": configMapYAML("greeting", "changed")})
	repo.Publish()
	refresh(name)
	held := getApp(t, c, name, "BreakGlass", func(a *v1alpha1.Application) bool {
		return conditionMessage(a, BreakGlassCondition) != "" && a.Status.Sync.Status == "OutOfSync"
	})
	if msg := conditionMessage(held, BreakGlassCondition); !strings.Contains(msg, "automated sync to cluster "+clusterName+" is paused: INC-42: hands on east") {
		t.Errorf("BreakGlass: %s", msg)
	}
	time.Sleep(2 * time.Second)
	if configMapValue(rc, ns, "greeting") != "hello" {
		t.Fatal("an automated sync went through break-glass")
	}
	glass("")
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		return configMapValue(rc, ns, "greeting") == "changed", nil
	})
	if err != nil {
		t.Fatal("the change did not go through once break-glass was lifted")
	}

	// Not registered; not allowed by the project.
	for _, tc := range []struct {
		name string
		dest map[string]any
		want string
	}{
		{name: "nowhere-" + ns, dest: map[string]any{"name": "nowhere"}, want: "there are no clusters with this name: nowhere"},
		{name: "here-" + ns, dest: map[string]any{"server": argocd.InClusterServer},
			want: "application destination server '" + argocd.InClusterServer + "' and namespace '" + ns + "' do not match any of the allowed destinations in project '" + project + "'"},
	} {
		create(t, c, application(tc.name, tc.dest))
		got := getApp(t, c, tc.name, "InvalidSpecError", func(a *v1alpha1.Application) bool { return conditionMessage(a, "InvalidSpecError") != "" })
		if msg := conditionMessage(got, "InvalidSpecError"); !strings.Contains(msg, tc.want) {
			t.Errorf("%s: InvalidSpecError %q, want ~%q", tc.name, msg, tc.want)
		}
	}

	// Deleting the Application deletes its objects where they are.
	if err := c.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		return c.Get(ctx, types.NamespacedName{Namespace: "argocd", Name: name}, &v1alpha1.Application{}) != nil &&
			configMapValue(rc, ns, "greeting") == "", nil
	})
	if err != nil {
		t.Fatal("the Application's objects in the destination cluster outlived it")
	}
	var local corev1.ConfigMapList
	if err := c.List(ctx, &local, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, cm := range local.Items {
		if cm.Name == "greeting" || cm.Name == "other" {
			t.Errorf("ConfigMap %s was written here", cm.Name)
		}
	}
}
