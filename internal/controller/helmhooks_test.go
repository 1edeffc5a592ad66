package controller

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/clustertest"
)

// TestHelmHooksInArgoApplication: an Application on a chart runs the
// chart's Helm hooks in Argo CD's phases: pre-install as PreSync (here a
// Job that must complete, then a ConfigMap), while a test hook is never
// applied. Before, every hook template was dropped from the render.
func TestHelmHooksInArgoApplication(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ensureNamespace(t, c, "argocd")
	permissiveProject(t, c, "anything")
	ns := clustertest.Namespace(t)
	hook := func(kind, name, phase, extra string) string {
		return "apiVersion: " + map[string]string{"Job": "batch/v1", "ConfigMap": "v1", "Pod": "v1"}[kind] + "\nkind: " + kind +
			"\nmetadata:\n  name: " + name + "\n  annotations:\n    helm.sh/hook: " + phase + "\n" + extra
	}
	repo.Commit("hooked chart", map[string]string{
		"charts/hooked/Chart.yaml":          "apiVersion: v2\nname: hooked\nversion: 0.1.0\n",
		"charts/hooked/templates/app.yaml":  configMapYAML("app", "v1"),
		"charts/hooked/templates/pre.yaml":  hook("ConfigMap", "pre-install-marker", "pre-install,pre-upgrade", "data: {value: ran}\n"),
		"charts/hooked/templates/job.yaml":  hook("Job", "migrate", "pre-install", "spec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: m, image: example/migrate:1}]\n"),
		"charts/hooked/templates/test.yaml": hook("Pod", "smoke", "test", "spec:\n  containers: [{name: t, image: example/test:1}]\n"),
	})
	repo.Publish()
	name := "hooks-" + ns
	app := argoApp(name, ns, "anything", map[string]any{"repoURL": "file://" + repo.Bare, "path": "charts/hooked", "helm": map[string]any{}})
	create(t, c, app)
	got := getApp(t, c, name, "Synced and Healthy", func(a *v1alpha1.Application) bool {
		return a.Status.Sync.Status == "Synced" && a.Status.Health.Status == "Healthy" && a.Status.OperationState != nil &&
			a.Status.OperationState.Phase == "Succeeded"
	})
	if configMapValue(c, ns, "pre-install-marker") != "ran" {
		t.Error("the pre-install hook ConfigMap was not applied")
	}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "smoke"}, &corev1.Pod{}); err == nil {
		t.Error("the test hook Pod was applied")
	}
	hooks := 0
	for _, r := range got.Status.OperationState.SyncResult.Resources {
		if r.HookPhase != "" || r.HookType != "" {
			hooks++
		}
	}
	if hooks < 2 {
		t.Errorf("operationState lists %d hook results, want the ConfigMap and the Job", hooks)
	}
	for _, r := range got.Status.Resources {
		if r.Name == "pre-install-marker" || r.Name == "migrate" {
			t.Errorf("hook %s is listed among the Application's resources", r.Name)
		}
	}
}

// TestHelmDependenciesInArgoApplication: an Application on a chart whose
// dependency is not vendored in charts/ deploys the dependency too,
// fetched from its Helm repository as `helm dependency build` would.
// Before, the chart was refused (and before that, rendered without it).
func TestHelmDependenciesInArgoApplication(t *testing.T) {
	c, repo := setup(t)
	ensureNamespace(t, c, "argocd")
	permissiveProject(t, c, "anything")
	ns := clustertest.Namespace(t)
	url := helmRepoServer(t, "1.15.0", "1.16.0")
	repo.Commit("umbrella chart", map[string]string{
		"charts/umbrella/Chart.yaml": "apiVersion: v2\nname: umbrella\nversion: 0.1.0\ndependencies:\n" +
			"- {name: external-dns, version: 1.16.x, repository: \"" + url + "\"}\n",
		"charts/umbrella/values.yaml":       "external-dns:\n  provider: from-umbrella\n",
		"charts/umbrella/templates/cm.yaml": configMapYAML("umbrella", "v1"),
	})
	repo.Publish()
	name := "deps-" + ns
	app := argoApp(name, ns, "anything", map[string]any{"repoURL": "file://" + repo.Bare, "path": "charts/umbrella", "helm": map[string]any{"releaseName": "dns"}})
	create(t, c, app)
	getApp(t, c, name, "Synced", func(a *v1alpha1.Application) bool {
		return a.Status.Sync.Status == "Synced" && a.Status.OperationState != nil && a.Status.OperationState.Phase == "Succeeded"
	})
	if configMapValue(c, ns, "umbrella") != "v1" {
		t.Error("the umbrella chart's own ConfigMap is missing")
	}
	if args := deploymentArgs(c, ns, "dns"); !strings.Contains(args, "--provider=from-umbrella") {
		t.Errorf("the dependency's Deployment: args %q, want the umbrella's values for it", args)
	}
}
