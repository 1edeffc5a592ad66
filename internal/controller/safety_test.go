package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/plan"
)

// plantedToken is a credential put in a repository URL's user name, the
// form that used to slip through redaction.
const plantedToken = "ghp_PLANTEDt0kenN0tForDisplay"

func permissiveProject(t *testing.T, c client.Client, name string) {
	t.Helper()
	err := c.Create(context.Background(), &v1alpha1.AppProject{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "argocd"},
		Spec: v1alpha1.AppProjectSpec{SourceRepos: []string{"*"},
			Destinations: []v1alpha1.ApplicationDestination{{Server: "https://kubernetes.default.svc", Namespace: "*"}}},
	})
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
}

func getApp(t *testing.T, c client.Client, name string, what string, cond func(*v1alpha1.Application) bool) *v1alpha1.Application {
	t.Helper()
	app := &v1alpha1.Application{}
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, types.NamespacedName{Namespace: "argocd", Name: name}, app); err != nil {
			return false, nil
		}
		return cond(app), nil
	})
	if err != nil {
		out, _ := yaml.Marshal(app.Status)
		t.Fatalf("%s: waiting for %s: %v\nstatus:\n%s", name, what, err, out)
	}
	return app
}

func condition(app *v1alpha1.Application, typ string) string {
	for _, c := range app.Status.Conditions {
		if c.Type == typ {
			return c.Message
		}
	}
	return ""
}

// TestTokenInURLIsNeverShown: an Application whose repoURL carries a bare
// token as its user name fails to fetch; the token must appear in no
// condition, operation message or Event.
func TestTokenInURLIsNeverShown(t *testing.T) {
	c, _ := setup(t)
	ensureNamespace(t, c, "argocd")
	permissiveProject(t, c, "anything")
	ns := clustertest.Namespace(t)
	app := &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: "token-" + ns, Namespace: "argocd"},
		Spec: v1alpha1.ApplicationSpec{Project: "anything",
			Source:      &v1alpha1.ApplicationSource{RepoURL: "http://" + plantedToken + "@127.0.0.1:1/org/app.git", Path: "x"},
			Destination: v1alpha1.ApplicationDestination{Server: "https://kubernetes.default.svc", Namespace: ns}},
	}
	create(t, c, app)
	got := getApp(t, c, app.Name, "a ComparisonError", func(a *v1alpha1.Application) bool { return condition(a, "ComparisonError") != "" })
	if msg := condition(got, "ComparisonError"); !strings.Contains(msg, "redacted@127.0.0.1:1") {
		t.Errorf("ComparisonError does not show the redacted URL: %s", msg)
	}
	status, _ := yaml.Marshal(got.Status)
	if strings.Contains(string(status), plantedToken) {
		t.Errorf("the token is in the Application's status:\n%s", status)
	}
	events := &corev1.EventList{}
	if err := c.List(context.Background(), events, client.InNamespace("argocd")); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if strings.Contains(e.Message, plantedToken) {
			t.Errorf("event %s/%s shows the token: %s", e.Reason, e.Name, e.Message)
		}
	}
	logged := controllerLog.all()
	if len(logged) == 0 {
		t.Error("the controller logged nothing: the scan would prove nothing")
	}
	for _, line := range logged {
		if strings.Contains(line, plantedToken) {
			t.Errorf("the controller's log shows the token: %s", line)
		}
	}
}

// TestApplicationPruneBudget: an automated Application whose Git loses
// most of its objects holds the prune, says so in a PruneHeld condition
// and an Event, and prunes once `converge approve-prune` (the annotation)
// approves it.
func TestApplicationPruneBudget(t *testing.T) {
	c, _ := setup(t)
	ensureNamespace(t, c, "argocd")
	permissiveProject(t, c, "anything")
	ns := clustertest.Namespace(t)
	repo := twelveConfigMaps(t)
	app := &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: "held-" + ns, Namespace: "argocd",
			Annotations: map[string]string{"converge.dev/prune-budget": "5"}},
		Spec: v1alpha1.ApplicationSpec{Project: "anything",
			Source:      &v1alpha1.ApplicationSource{RepoURL: gittest.FileURL(repo.Bare), Path: "app"},
			Destination: v1alpha1.ApplicationDestination{Server: "https://kubernetes.default.svc", Namespace: ns},
			SyncPolicy:  &v1alpha1.SyncPolicy{Automated: &v1alpha1.SyncPolicyAutomated{Prune: true}}},
	}
	create(t, c, app)
	getApp(t, c, app.Name, "Synced", func(a *v1alpha1.Application) bool { return a.Status.Sync.Status == "Synced" })

	repo.Commit("two left", map[string]string{"app/all.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-00}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-01}\n"})
	repo.Publish()
	refresh(t, c, app.Name)
	got := getApp(t, c, app.Name, "PruneHeld", func(a *v1alpha1.Application) bool { return condition(a, PruneHeld) != "" })
	if msg := condition(got, PruneHeld); !strings.Contains(msg, "deleting 10 is over the prune budget (more than 5 objects)") {
		t.Errorf("PruneHeld: %s", msg)
	}
	cms := &corev1.ConfigMapList{}
	c.List(context.Background(), cms, client.InNamespace(ns))
	if n := countOwned(cms); n != 12 {
		t.Errorf("%d ConfigMaps while the prune is held, want 12", n)
	}

	patch := client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`,
		plan.PruneApprovedAnnotation, time.Now().Add(2*time.Second).UTC().Format(time.RFC3339))))
	if err := c.Patch(context.Background(), got, patch); err != nil {
		t.Fatal(err)
	}
	getApp(t, c, app.Name, "the approved prune", func(a *v1alpha1.Application) bool {
		return condition(a, PruneHeld) == "" && a.Status.Sync.Status == "Synced"
	})
	c.List(context.Background(), cms, client.InNamespace(ns))
	if n := countOwned(cms); n != 2 {
		t.Errorf("%d ConfigMaps after the approval, want 2", n)
	}
}

// twelveConfigMaps publishes a repository whose app/ folder holds
// twelve ConfigMaps, cm-00 to cm-11.
func twelveConfigMaps(t *testing.T) *gittest.Repo {
	t.Helper()
	repo := gittest.NewRepo(t, t.TempDir()+"/held.git")
	var all strings.Builder
	for i := 0; i < 12; i++ {
		fmt.Fprintf(&all, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%02d}\n", i)
	}
	repo.Commit("twelve", map[string]string{"app/all.yaml": all.String()})
	repo.Publish()
	return repo
}

func countOwned(list *corev1.ConfigMapList) int {
	n := 0
	for _, cm := range list.Items {
		if cm.Annotations[plan.OwnerAnnotation] != "" {
			n++
		}
	}
	return n
}

func refresh(t *testing.T, c client.Client, name string) {
	t.Helper()
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"argocd.argoproj.io/refresh":"hard"}}}`))
	if err := c.Patch(context.Background(), &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "argocd"}}, patch); err != nil {
		t.Fatal(err)
	}
}

// TestKustomizationSyncWindow: a Kustomization that names an AppProject
// whose deny window is open applies nothing and says why; once the
// window is gone from the project, it applies.
func TestKustomizationSyncWindow(t *testing.T) {
	c, _ := setup(t)
	ctx := context.Background()
	ensureNamespace(t, c, "argocd")
	ns := clustertest.Namespace(t)
	repo := gittest.NewRepo(t, t.TempDir()+"/windows.git")
	repo.Commit("one", map[string]string{"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: windowed}\n"})
	repo.Publish()
	proj := &v1alpha1.AppProject{
		ObjectMeta: metav1.ObjectMeta{Name: "freeze-" + ns, Namespace: "argocd"},
		Spec: v1alpha1.AppProjectSpec{SyncWindows: []v1alpha1.SyncWindow{
			{Kind: "deny", Schedule: "* * * * *", Duration: "2h", Applications: []string{"windowed-*"}}}},
	}
	create(t, c, proj)
	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "windows", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: gittest.FileURL(repo.Bare), Interval: metav1.Duration{Duration: time.Minute}}})
	create(t, c, &kustomizev1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Name: "windowed-app", Namespace: ns,
			Annotations: map[string]string{SyncWindowsAnnotation: "argocd/" + proj.Name}},
		Spec: kustomizev1.KustomizationSpec{Path: "./app", Prune: true, TargetNamespace: ns, Interval: metav1.Duration{Duration: time.Minute},
			SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "windows"}},
	})
	ks := waitKustomization(t, c, ns, "windowed-app", "held by the window", func(k *kustomizev1.Kustomization) bool {
		r := meta.FindStatusCondition(k.Status.Conditions, flux.ReadyCondition)
		return r != nil && r.Reason == SyncWindowCondition
	})
	if r := meta.FindStatusCondition(ks.Status.Conditions, flux.ReadyCondition); r.Status != metav1.ConditionFalse ||
		!strings.Contains(r.Message, `sync denied by the active deny window 0 ("* * * * *" for 2h)`) {
		t.Errorf("Ready: %s %q", r.Status, r.Message)
	}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "windowed"}, &corev1.ConfigMap{}); err == nil {
		t.Error("applied inside a deny window")
	}

	proj.Spec.SyncWindows = nil
	if err := c.Update(ctx, proj); err != nil {
		t.Fatal(err)
	}
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+ReconcileRequestAnnotation+`":"`+time.Now().String()+`"}}}`))
	if err := c.Patch(ctx, ks, patch); err != nil {
		t.Fatal(err)
	}
	waitKustomization(t, c, ns, "windowed-app", "Ready", func(k *kustomizev1.Kustomization) bool {
		return isReady(k.Status.Conditions) && meta.FindStatusCondition(k.Status.Conditions, SyncWindowCondition) == nil
	})
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "windowed"}, &corev1.ConfigMap{}); err != nil {
		t.Errorf("not applied once the window is gone: %v", err)
	}
}

// TestKustomizationPruneHeld: the same budget for a Flux Kustomization:
// Ready=False reason PruneHeld, nothing deleted, then pruned once the
// approval annotation (what `converge approve-prune kustomization` sets)
// is newer than the hold.
func TestKustomizationPruneHeld(t *testing.T) {
	c, _ := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	repo := twelveConfigMaps(t)
	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "held", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: gittest.FileURL(repo.Bare), Interval: metav1.Duration{Duration: time.Minute}}})
	ks := &kustomizev1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Name: "held", Namespace: ns, Annotations: map[string]string{"converge.dev/prune-budget": "5"}},
		Spec: kustomizev1.KustomizationSpec{Path: "./app", Prune: true, TargetNamespace: ns, Interval: metav1.Duration{Duration: time.Minute},
			SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "held"}},
	}
	create(t, c, ks)
	waitKustomization(t, c, ns, "held", "Ready", func(k *kustomizev1.Kustomization) bool { return isReady(k.Status.Conditions) })

	repo.Commit("two left", map[string]string{"app/all.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-00}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-01}\n"})
	repo.Publish()
	now := func() string { return time.Now().Format(time.RFC3339Nano) }
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+ReconcileRequestAnnotation+`":"`+now()+`"}}}`))
	if err := c.Patch(ctx, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "held", Namespace: ns}}, patch); err != nil {
		t.Fatal(err)
	}
	got := waitKustomization(t, c, ns, "held", "held", func(k *kustomizev1.Kustomization) bool {
		r := meta.FindStatusCondition(k.Status.Conditions, flux.ReadyCondition)
		return r != nil && r.Reason == PruneHeld
	})
	if r := meta.FindStatusCondition(got.Status.Conditions, flux.ReadyCondition); r.Status != metav1.ConditionFalse ||
		!strings.Contains(r.Message, `path "./app" now renders 2 objects where the unit owns 12; deleting 10`) {
		t.Errorf("Ready: %s %q", r.Status, r.Message)
	}
	cms := &corev1.ConfigMapList{}
	c.List(ctx, cms, client.InNamespace(ns))
	if n := countOwned(cms); n != 12 {
		t.Errorf("%d ConfigMaps while held, want 12", n)
	}

	approve := client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`,
		plan.PruneApprovedAnnotation, time.Now().Add(2*time.Second).UTC().Format(time.RFC3339))))
	if err := c.Patch(ctx, got, approve); err != nil {
		t.Fatal(err)
	}
	waitKustomization(t, c, ns, "held", "Ready after the approval", func(k *kustomizev1.Kustomization) bool { return isReady(k.Status.Conditions) })
	c.List(ctx, cms, client.InNamespace(ns))
	if n := countOwned(cms); n != 2 {
		t.Errorf("%d ConfigMaps after the approval, want 2", n)
	}
}
