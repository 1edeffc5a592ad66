package controller

import (
	"context"
	"encoding/base64"

	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	"converge.dev/converge/internal/decrypt"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/localcluster"
)

// applyYAML creates every document of a file, after replacing words.
func applyYAML(t *testing.T, c client.Client, path string, replace ...string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer(replace...).Replace(string(data))
	for _, doc := range strings.Split(text, "\n---\n") {
		var obj client.Object
		switch {
		case strings.Contains(doc, "\nkind: Kustomization"):
			obj = &kustomizev1.Kustomization{}
		case strings.Contains(doc, "\nkind: GitRepository"):
			obj = &sourcev1.GitRepository{}
		default:
			t.Fatalf("%s: unexpected document", path)
		}
		if err := yaml.Unmarshal([]byte(doc), obj); err != nil {
			t.Fatal(err)
		}
		create(t, c, obj)
	}
}

func ensureNamespace(t *testing.T, c client.Client, name string) {
	t.Helper()
	err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func waitKustomization(t *testing.T, c client.Client, ns, name, what string, cond func(*kustomizev1.Kustomization) bool) *kustomizev1.Kustomization {
	t.Helper()
	ks := &kustomizev1.Kustomization{}
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, ks); err != nil {
			return false, nil
		}
		return cond(ks), nil
	})
	if err != nil {
		out, _ := yaml.Marshal(ks.Status)
		t.Fatalf("waiting for Kustomization %s/%s to be %s: %v\nstatus:\n%s", ns, name, what, err, out)
	}
	return ks
}

func isReady(conds []metav1.Condition) bool {
	return meta.IsStatusConditionTrue(conds, flux.ReadyCondition)
}

// TestSeedFluxKustomization: the seed's §4.1 GitRepository and
// Kustomization, unchanged but for the URL, reach Ready with Flux's
// status shape; a source that becomes unreachable turns the
// GitRepository Ready=False with a clear reason, and nothing is pruned.
func TestSeedFluxKustomization(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ensureNamespace(t, c, "flux-system")
	applyYAML(t, c, "testdata/flux/seed-4.1.yaml", "https://git.example.com/platform/config.git", gittest.FileURL(repo.Bare))

	ks := waitKustomization(t, c, "flux-system", "orders-api-prod", "Ready", func(k *kustomizev1.Kustomization) bool { return isReady(k.Status.Conditions) })
	src := &sourcev1.GitRepository{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: "flux-system", Name: "platform-config"}, src); err != nil {
		t.Fatal(err)
	}
	if src.Status.Artifact == nil || !strings.HasPrefix(src.Status.Artifact.Revision, "main@sha1:") || !isReady(src.Status.Conditions) {
		t.Errorf("GitRepository status: %+v", src.Status)
	}
	if ks.Status.LastAppliedRevision != src.Status.Artifact.Revision || ks.Status.LastAttemptedRevision != ks.Status.LastAppliedRevision ||
		ks.Status.ObservedGeneration != ks.Generation || ks.Status.Inventory == nil || len(ks.Status.Inventory.Entries) != 3 {
		out, _ := yaml.Marshal(ks.Status)
		t.Errorf("Kustomization status shape:\n%s", out)
	}
	if r := meta.FindStatusCondition(ks.Status.Conditions, flux.ReadyCondition); r.Reason != flux.ReconciliationSucceededReason ||
		r.Message != "Applied revision: "+src.Status.Artifact.Revision {
		t.Errorf("Ready condition: %+v", r)
	}
	dep := &appsv1.Deployment{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: "default", Name: "orders-api"}, dep); err != nil || dep.Status.AvailableReplicas == 0 {
		t.Fatalf("orders-api Deployment: %v, available %d (wait: true waits for it)", err, dep.Status.AvailableReplicas)
	}

	// The source goes away.
	if err := os.Rename(repo.Bare, repo.Bare+".gone"); err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{src, ks} {
		patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+ReconcileRequestAnnotation+`":"`+time.Now().String()+`"}}}`))
		if err := c.Patch(ctx, o, patch); err != nil {
			t.Fatal(err)
		}
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		c.Get(ctx, types.NamespacedName{Namespace: "flux-system", Name: "platform-config"}, src)
		r := meta.FindStatusCondition(src.Status.Conditions, flux.ReadyCondition)
		return r != nil && r.Status == metav1.ConditionFalse, nil
	})
	if err != nil {
		t.Fatalf("GitRepository still Ready after its repository went away: %+v", src.Status.Conditions)
	}
	r := meta.FindStatusCondition(src.Status.Conditions, flux.ReadyCondition)
	if r.Reason != flux.GitOperationFailedReason || !strings.Contains(r.Message, "apps.git") {
		t.Errorf("Ready=False reason %q message %q; want GitOperationFailed naming the repository", r.Reason, r.Message)
	}
	if src.Status.Artifact == nil {
		t.Error("the last artifact was dropped")
	}
	time.Sleep(2 * time.Second) // time for a wrong prune to happen
	for _, name := range []string{"orders-api", "orders-api-config"} {
		var o client.Object = &appsv1.Deployment{}
		if name == "orders-api-config" {
			o = &corev1.ConfigMap{}
		}
		if err := c.Get(ctx, types.NamespacedName{Namespace: "default", Name: name}, o); err != nil {
			t.Errorf("%s after the source became unreachable: %v", name, err)
		}
	}
}

// TestFluxDependsOn: the seed's §4.3. platform-apps waits for
// platform-crds and platform-policies; each starts as soon as its
// dependencies are Ready, driven by their Ready events (intervals are 10
// minutes here, Flux's fixed dependency retry would be 30s).
func TestFluxDependsOn(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	repo.Commit("platform", map[string]string{
		"clusters/prod/crds/crd.yaml": `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.deps.example.com}
spec:
  group: deps.example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: widget-operator, namespace: ` + ns + `}
spec:
  replicas: 1
  selector: {matchLabels: {app: widget-operator}}
  template:
    metadata: {labels: {app: widget-operator}, annotations: {sim.converge.dev/delay: 2s}}
    spec: {containers: [{name: op, image: example/widget-operator:1}]}
`,
		"clusters/prod/policies/policy.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: policy, namespace: " + ns + "}\ndata: {mode: enforce}\n",
		"clusters/prod/apps/app.yaml": "apiVersion: deps.example.com/v1\nkind: Widget\nmetadata: {name: app, namespace: " + ns + "}\nspec: {size: 1}\n" +
			"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, namespace: " + ns + "}\ndata: {k: v}\n",
	})
	repo.Publish()

	var mu sync.Mutex
	seen := map[string]time.Time{}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			for _, name := range []string{"platform-crds", "platform-policies", "platform-apps"} {
				ks := &kustomizev1.Kustomization{}
				if c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, ks) == nil && isReady(ks.Status.Conditions) {
					mu.Lock()
					if seen[name].IsZero() {
						seen[name] = time.Now()
					}
					mu.Unlock()
				}
			}
			if c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "policy"}, &corev1.ConfigMap{}) == nil {
				mu.Lock()
				if seen["policy applied"].IsZero() {
					seen["policy applied"] = time.Now()
				}
				mu.Unlock()
			}
			if c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "app"}, &corev1.ConfigMap{}) == nil {
				mu.Lock()
				if seen["app applied"].IsZero() {
					seen["app applied"] = time.Now()
				}
				mu.Unlock()
			}
		}
	}()
	applyYAML(t, c, "testdata/flux/seed-4.3.yaml", "NAMESPACE", ns, "REPO_URL", gittest.FileURL(repo.Bare))
	start := time.Now()
	waitKustomization(t, c, ns, "platform-apps", "Ready", func(k *kustomizev1.Kustomization) bool { return isReady(k.Status.Conditions) })
	took := time.Since(start)
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	order := func(a, b string) {
		if seen[a].IsZero() || seen[b].IsZero() || !seen[a].Before(seen[b]) {
			t.Errorf("%s (%s) must come before %s (%s)", a, seen[a].Format("15:04:05.000"), b, seen[b].Format("15:04:05.000"))
		}
	}
	order("platform-crds", "policy applied")
	order("platform-crds", "app applied")
	order("platform-policies", "app applied")
	t.Logf("crds Ready +%s, policies Ready +%s, apps Ready +%s", seen["platform-crds"].Sub(start).Round(10*time.Millisecond),
		seen["platform-policies"].Sub(start).Round(10*time.Millisecond), seen["platform-apps"].Sub(start).Round(10*time.Millisecond))
	if took > 25*time.Second {
		t.Errorf("platform-apps took %s: dependencies must wake it on their Ready event, not on a retry timer", took)
	}
	ks := &kustomizev1.Kustomization{}
	c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "platform-apps"}, ks)
	if ks.Status.Inventory == nil || len(ks.Status.Inventory.Entries) != 2 {
		t.Errorf("platform-apps inventory: %+v", ks.Status.Inventory)
	}
}

// TestOneOwnerAcrossDialects: an object an Argo CD Application applied
// is refused to a Flux Kustomization that renders it too, with a
// condition on both, and left as the Application applied it.
func TestOneOwnerAcrossDialects(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	repo.Commit("shared", map[string]string{"shared/cm.yaml": configMapYAML("shared", "v1")})
	repo.Publish()
	create(t, c, &v1alpha1.AppProject{
		ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
		Spec: v1alpha1.AppProjectSpec{SourceRepos: []string{"*"},
			Destinations: []v1alpha1.ApplicationDestination{{Server: "*", Namespace: "*"}}},
	})
	create(t, c, app(ns, "argo-owner", gittest.FileURL(repo.Bare), "shared", nil))
	waitNamed(t, c, ns, "argo-owner", "Synced", func(a *v1alpha1.Application) bool { return a.Status.Sync.Status == "Synced" })

	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "shared", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: gittest.FileURL(repo.Bare), Interval: metav1.Duration{Duration: time.Minute}}})
	create(t, c, &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "flux-claimer", Namespace: ns},
		Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "shared"},
			Path: "./shared", TargetNamespace: ns, Prune: true, Interval: metav1.Duration{Duration: time.Minute}}})
	ks := waitKustomization(t, c, ns, "flux-claimer", "refused", func(k *kustomizev1.Kustomization) bool {
		r := meta.FindStatusCondition(k.Status.Conditions, flux.ReadyCondition)
		return r != nil && r.Reason == flux.OwnershipConflictReason
	})
	if r := meta.FindStatusCondition(ks.Status.Conditions, flux.ReadyCondition); !strings.Contains(r.Message, "argocd."+ns+".argo-owner") {
		t.Errorf("condition does not name the owner: %s", r.Message)
	}
	// The Application learns of the claim at once, not at its next
	// resync (ten minutes away here): the refusal wakes it.
	argo := waitNamed(t, c, ns, "argo-owner", "warned", func(a *v1alpha1.Application) bool {
		for _, cond := range a.Status.Conditions {
			if cond.Type == "SharedResourceWarning" && strings.Contains(cond.Message, "flux."+ns+".flux-claimer") {
				return true
			}
		}
		return false
	})
	t.Logf("Application condition: %+v", argo.Status.Conditions)
	// Both sides get a Warning Event, as kubectl describe shows them.
	for _, want := range []struct{ kind, name, reason string }{
		{"Kustomization", "flux-claimer", flux.OwnershipConflictReason},
		{"Application", "argo-owner", "SharedResourceWarning"},
	} {
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			evs := &eventsv1.EventList{}
			if err := c.List(ctx, evs, client.InNamespace(ns)); err != nil {
				return false, nil
			}
			for _, e := range evs.Items {
				if e.Regarding.Kind == want.kind && e.Regarding.Name == want.name && e.Reason == want.reason && e.Type == corev1.EventTypeWarning {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Errorf("no Warning Event %s on %s %s", want.reason, want.kind, want.name)
		}
	}
	if v := configMapValue(c, ns, "shared"); v != "v1" {
		t.Errorf("shared ConfigMap value %q", v)
	}
	cm := &corev1.ConfigMap{}
	c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shared"}, cm)
	if owner := cm.Annotations["converge.dev/owner"]; owner != "argocd."+ns+".argo-owner" {
		t.Errorf("owner changed to %q", owner)
	}
}

// TestFluxPostBuildSubstitute: ${vars} from postBuild.substitute and
// substituteFrom (a ConfigMap, a Secret, a missing optional one) land in
// the applied objects; inline values win; an object marked
// substitute: disabled keeps its text; a missing required source fails
// with its name and no value leaks into the status.
func TestFluxPostBuildSubstitute(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	repo.Commit("vars", map[string]string{
		"vars/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n" +
			"data: {cluster: \"${cluster_name}\", region: \"${region:=eu-west-1}\", token: \"${api_token}\", tier: \"${tier}\"}\n" +
			"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: literal\n  annotations: {kustomize.toolkit.fluxcd.io/substitute: disabled}\ndata: {text: \"${cluster_name}\"}\n",
	})
	repo.Publish()
	create(t, c, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cluster-vars", Namespace: ns}, Data: map[string]string{"cluster_name": "prod-1", "tier": "from-configmap"}})
	create(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cluster-secrets", Namespace: ns}, StringData: map[string]string{"api_token": "s3cr3t-value"}})
	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "vars", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: gittest.FileURL(repo.Bare), Interval: metav1.Duration{Duration: time.Minute}}})
	ks := &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "vars", Namespace: ns},
		Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "vars"},
			Path: "./vars", TargetNamespace: ns, Prune: true, Interval: metav1.Duration{Duration: time.Minute},
			PostBuild: &kustomizev1.PostBuild{Substitute: map[string]string{"tier": "inline"},
				SubstituteFrom: []kustomizev1.SubstituteReference{{Kind: "ConfigMap", Name: "cluster-vars"},
					{Kind: "Secret", Name: "cluster-secrets"}, {Kind: "ConfigMap", Name: "not-there", Optional: true}}}}}
	create(t, c, ks)
	waitKustomization(t, c, ns, "vars", "Ready", func(k *kustomizev1.Kustomization) bool { return isReady(k.Status.Conditions) })
	got := &corev1.ConfigMap{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "settings"}, got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"cluster": "prod-1", "region": "eu-west-1", "token": "s3cr3t-value", "tier": "inline"}
	for k, v := range want {
		if got.Data[k] != v {
			t.Errorf("settings.%s = %q, want %q", k, got.Data[k], v)
		}
	}
	lit := &corev1.ConfigMap{}
	c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "literal"}, lit)
	if lit.Data["text"] != "${cluster_name}" {
		t.Errorf("substitute: disabled object changed: %q", lit.Data["text"])
	}

	// A required source goes missing: the reconcile fails naming it.
	patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"postBuild":{"substituteFrom":[{"kind":"Secret","name":"cluster-secrets"},{"kind":"Secret","name":"gone"}]}}}`))
	if err := c.Patch(ctx, ks, patch); err != nil {
		t.Fatal(err)
	}
	failed := waitKustomization(t, c, ns, "vars", "failed", func(k *kustomizev1.Kustomization) bool {
		r := meta.FindStatusCondition(k.Status.Conditions, flux.ReadyCondition)
		return r != nil && r.Status == metav1.ConditionFalse
	})
	status, _ := yaml.Marshal(failed.Status)
	if !strings.Contains(string(status), "Secret "+ns+"/gone") {
		t.Errorf("status does not name the missing Secret:\n%s", status)
	}
	if strings.Contains(string(status), "s3cr3t-value") {
		t.Error("a Secret value leaked into the status")
	}
}

// TestFluxDeletionAndHealthChecks: deleting a pruning Kustomization
// deletes what it applied but never a Namespace; deletionPolicy Orphan
// keeps everything; healthChecks hold Ready until the named object is
// healthy, and time out with HealthCheckFailed.
func TestFluxDeletionAndHealthChecks(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	keepNS := ns + "-kept"
	repo.Commit("gc", map[string]string{
		"gc/all.yaml":     "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + keepNS + "}\n---\n" + configMapYAML("gc-cm", "v1"),
		"orphan/all.yaml": configMapYAML("orphan-cm", "v1"),
		"hc/all.yaml":     configMapYAML("hc-cm", "v1"),
		"hc-bad/all.yaml": configMapYAML("hc-bad-cm", "v1"),
	})
	repo.Publish()
	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "gc", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: gittest.FileURL(repo.Bare), Interval: metav1.Duration{Duration: time.Minute}}})
	ks := func(name, path, policy string, timeout time.Duration, checks ...kustomizev1.NamespacedObjectKindReference) *kustomizev1.Kustomization {
		k := &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "gc"},
				Path: path, TargetNamespace: ns, Prune: true, Interval: metav1.Duration{Duration: time.Minute},
				DeletionPolicy: policy, HealthChecks: checks}}
		if timeout > 0 {
			k.Spec.Timeout = &metav1.Duration{Duration: timeout}
		}
		create(t, c, k)
		return k
	}
	gc := ks("gc", "./gc", "", 0)
	orphan := ks("orphan", "./orphan", "Orphan", 0)
	for _, name := range []string{"gc", "orphan"} {
		waitKustomization(t, c, ns, name, "Ready", func(k *kustomizev1.Kustomization) bool { return isReady(k.Status.Conditions) })
	}
	for _, o := range []client.Object{gc, orphan} {
		if err := c.Delete(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		gone := 0
		for _, name := range []string{"gc", "orphan"} {
			if apierrors.IsNotFound(c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &kustomizev1.Kustomization{})) {
				gone++
			}
		}
		return gone == 2, nil
	})
	if err != nil {
		t.Fatal("Kustomizations not finalized within a minute")
	}
	if configMapValue(c, ns, "gc-cm") != "" {
		t.Error("gc-cm survived the deletion of its pruning Kustomization")
	}
	if err := c.Get(ctx, types.NamespacedName{Name: keepNS}, &corev1.Namespace{}); err != nil {
		t.Errorf("Namespace %s: %v; a Kustomization's deletion never deletes a Namespace", keepNS, err)
	}
	if configMapValue(c, ns, "orphan-cm") != "v1" {
		t.Error("deletionPolicy Orphan deleted orphan-cm")
	}

	// healthChecks on a Deployment someone else runs.
	deploy := func(name string, podAnn map[string]string) {
		one := int32(1)
		create(t, c, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}, Annotations: podAnn},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example/" + name + ":1"}}}}}})
	}
	deploy("slow", map[string]string{"sim.converge.dev/delay": "2s"})
	deploy("broken", map[string]string{"sim.converge.dev/state": "CrashLoopBackOff"})
	ref := func(name string) kustomizev1.NamespacedObjectKindReference {
		return kustomizev1.NamespacedObjectKindReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name}
	}
	ks("hc", "./hc", "", 0, ref("slow"))
	ks("hc-bad", "./hc-bad", "Orphan", 3*time.Second, ref("broken"))
	waitKustomization(t, c, ns, "hc", "Ready", func(k *kustomizev1.Kustomization) bool { return isReady(k.Status.Conditions) })
	dep := &appsv1.Deployment{}
	c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "slow"}, dep)
	if dep.Status.AvailableReplicas == 0 {
		t.Error("hc became Ready before the Deployment it checks was available")
	}
	bad := waitKustomization(t, c, ns, "hc-bad", "failed", func(k *kustomizev1.Kustomization) bool {
		r := meta.FindStatusCondition(k.Status.Conditions, flux.ReadyCondition)
		return r != nil && r.Reason == flux.HealthCheckFailedReason
	})
	if r := meta.FindStatusCondition(bad.Status.Conditions, flux.ReadyCondition); !strings.Contains(r.Message, "broken") {
		t.Errorf("HealthCheckFailed does not name the object: %s", r.Message)
	}
}

// TestFluxOverlay: namePrefix, commonMetadata and images act on the
// built objects, as in Flux.
func TestFluxOverlay(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "apps", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: gittest.FileURL(repo.Bare), Interval: metav1.Duration{Duration: time.Minute}}})
	create(t, c, &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "overlay", Namespace: ns},
		Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "apps"},
			Path: "./apps/orders-api/overlays/prod", TargetNamespace: ns, Prune: true, Interval: metav1.Duration{Duration: time.Minute},
			NamePrefix: "flux-", CommonMetadata: &kustomizev1.CommonMetadata{Labels: map[string]string{"team": "orders"}},
			Images: []kustomizev1.Image{{Name: "registry.example.com/orders-api", NewTag: "9.9.9"}}}})
	waitKustomization(t, c, ns, "overlay", "Ready", func(k *kustomizev1.Kustomization) bool { return isReady(k.Status.Conditions) })
	dep := &appsv1.Deployment{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "flux-orders-api"}, dep); err != nil {
		t.Fatal(err)
	}
	if img := dep.Spec.Template.Spec.Containers[0].Image; img != "registry.example.com/orders-api:9.9.9" {
		t.Errorf("image %s", img)
	}
	if dep.Labels["team"] != "orders" {
		t.Errorf("labels %v", dep.Labels)
	}
}

// TestFluxSOPS: a Secret encrypted with age in the repository lands
// decrypted in the cluster and nowhere else: not in Git, not in the
// Kustomization's status, not in Events, not in converge's inventory.
// Without decryption configured, the encrypted Secret is refused and
// nothing is applied.
func TestFluxSOPS(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	const plaintext = "correct-horse-battery-staple"
	id, _ := age.GenerateX25519Identity()
	enc, err := decrypt.YAMLEncrypt([]byte("apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: "+plaintext+"}\n"),
		id.Recipient().String())
	if err != nil {
		t.Fatal(err)
	}
	repo.Commit("encrypted secret", map[string]string{"secrets/db.yaml": string(enc), "secrets/cm.yaml": configMapYAML("plain", "v1")})
	repo.Publish()
	create(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sops-age", Namespace: ns},
		StringData: map[string]string{"identity.agekey": id.String()}})
	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "secrets", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: gittest.FileURL(repo.Bare), Interval: metav1.Duration{Duration: time.Minute}}})
	mk := func(name string, dec *kustomizev1.Decryption) {
		create(t, c, &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "secrets"},
				Path: "./secrets", TargetNamespace: ns, Prune: true, Interval: metav1.Duration{Duration: time.Minute}, Decryption: dec}})
	}
	// Without decryption first: refused, nothing applied.
	mk("no-keys", nil)
	refused := waitKustomization(t, c, ns, "no-keys", "refused", func(k *kustomizev1.Kustomization) bool {
		r := meta.FindStatusCondition(k.Status.Conditions, flux.ReadyCondition)
		return r != nil && r.Status == metav1.ConditionFalse && strings.Contains(r.Message, "SOPS-encrypted")
	})
	if r := meta.FindStatusCondition(refused.Status.Conditions, flux.ReadyCondition); !strings.Contains(r.Message, "secrets/db.yaml") {
		t.Errorf("refusal does not name the file: %s", r.Message)
	}
	if configMapValue(c, ns, "plain") != "" {
		t.Error("the refused Kustomization applied its other objects")
	}
	if err := c.Delete(ctx, &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "no-keys", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}

	mk("with-keys", &kustomizev1.Decryption{Provider: "sops", SecretRef: &kustomizev1.LocalObjectReference{Name: "sops-age"}})
	ks := waitKustomization(t, c, ns, "with-keys", "Ready", func(k *kustomizev1.Kustomization) bool { return isReady(k.Status.Conditions) })
	sec := &corev1.Secret{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "db"}, sec); err != nil {
		t.Fatal(err)
	}
	if string(sec.Data["password"]) != plaintext {
		t.Errorf("Secret password %q", sec.Data["password"])
	}
	if _, ok := sec.Data["sops"]; ok || sec.Annotations["sops"] != "" {
		t.Error("SOPS metadata reached the cluster")
	}
	where := map[string]string{"the repository file": string(enc)}
	st, _ := yaml.Marshal(ks.Status)
	where["the Kustomization status"] = string(st)
	events := &corev1.EventList{}
	c.List(ctx, events, client.InNamespace(ns))
	ev, _ := yaml.Marshal(events)
	where["Events"] = string(ev)
	invs := &corev1.ConfigMapList{}
	c.List(ctx, invs, client.InNamespace("converge-system"))
	inv, _ := yaml.Marshal(invs)
	where["converge's inventories"] = string(inv)
	// Every file converge wrote: its caches of sources and renders.
	filepath.WalkDir(testCacheDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			data, _ := os.ReadFile(p)
			where["the cache file "+p] = string(data)
		}
		return nil
	})
	b64 := base64.StdEncoding.EncodeToString([]byte(plaintext))
	for place, text := range where {
		if strings.Contains(text, plaintext) || strings.Contains(text, b64) {
			t.Errorf("the plaintext appears in %s", place)
		}
	}
}

// TestFluxRemoteCluster: a Kustomization with spec.kubeConfig applies to
// the cluster its Secret names (a second local cluster), keeps its
// inventory there, and puts nothing in the controller's own cluster.
func TestFluxRemoteCluster(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	remote, err := localcluster.Start(ctx, localcluster.Options{Name: "remote", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { remote.Stop(context.Background()) })
	kubeconfig, err := os.ReadFile(remote.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	create(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "remote-kubeconfig", Namespace: ns},
		Data: map[string][]byte{"value": kubeconfig}})
	repo.Commit("remote", map[string]string{"remote/cm.yaml": configMapYAML("remote-only", "v1")})
	repo.Publish()
	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "remote", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: gittest.FileURL(repo.Bare), Interval: metav1.Duration{Duration: time.Minute}}})
	create(t, c, &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "remote", Namespace: ns},
		Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "remote"},
			Path: "./remote", TargetNamespace: "default", Prune: true, Interval: metav1.Duration{Duration: time.Minute},
			KubeConfig: &kustomizev1.KubeConfigReference{SecretRef: kustomizev1.SecretKeyReference{Name: "remote-kubeconfig"}}}})
	waitKustomization(t, c, ns, "remote", "Ready", func(k *kustomizev1.Kustomization) bool { return isReady(k.Status.Conditions) })

	rcfg, err := remote.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := client.New(rcfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v := configMapValue(rc, "default", "remote-only"); v != "v1" {
		t.Errorf("remote cluster: remote-only = %q", v)
	}
	if v := configMapValue(c, "default", "remote-only"); v != "" {
		t.Error("the object landed in the controller's own cluster")
	}
	invs := &corev1.ConfigMapList{}
	if err := rc.List(ctx, invs, client.InNamespace("converge-system")); err != nil || len(invs.Items) == 0 {
		t.Errorf("no inventory in the remote cluster: %v", err)
	}
}

// TestFluxServiceAccount: with serviceAccountName the Kustomization
// applies as that ServiceAccount: without RBAC nothing is applied and
// the error says forbidden; once the tenant's RoleBinding allows it, it
// applies, with no grant outside the tenant's namespace.
func TestFluxServiceAccount(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	repo.Commit("sa", map[string]string{"sa/cm.yaml": configMapYAML("by-sa", "v1")})
	repo.Publish()
	create(t, c, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: ns}})
	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "sa", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: gittest.FileURL(repo.Bare), Interval: metav1.Duration{Duration: time.Minute}}})
	ks := &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "sa", Namespace: ns},
		Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "sa"},
			Path: "./sa", TargetNamespace: ns, Prune: true, Interval: metav1.Duration{Duration: time.Minute}, ServiceAccountName: "deployer",
			RetryInterval: &metav1.Duration{Duration: time.Second}}}
	create(t, c, ks)
	waitKustomization(t, c, ns, "sa", "forbidden", func(k *kustomizev1.Kustomization) bool {
		r := meta.FindStatusCondition(k.Status.Conditions, flux.ReadyCondition)
		return r != nil && r.Status == metav1.ConditionFalse && strings.Contains(r.Message, "forbidden")
	})
	if configMapValue(c, ns, "by-sa") != "" {
		t.Fatal("applied without the ServiceAccount's permission")
	}
	// Only what Flux's multi-tenancy guide grants a tenant: rights in its
	// own namespace. The inventory is converge's to keep, with its own
	// rights; the tenant needs none in converge-system.
	create(t, c, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer", Namespace: ns}}})
	waitKustomization(t, c, ns, "sa", "Ready", func(k *kustomizev1.Kustomization) bool { return isReady(k.Status.Conditions) })
	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "by-sa"}, cm); err != nil {
		t.Fatal(err)
	}
}

// TestFluxIgnore: GitRepository spec.ignore and the repository's
// .sourceignore leave files out of a Kustomization's plain path.
func TestFluxIgnore(t *testing.T) {
	c, repo := setup(t)
	ns := clustertest.Namespace(t)
	repo.Commit("ignore", map[string]string{
		".sourceignore":        "# drafts stay in Git\n*.draft.yaml\n",
		"ign/kept.yaml":        configMapYAML("kept", "v1"),
		"ign/wip.draft.yaml":   configMapYAML("draft", "v1"),
		"ign/examples/ex.yaml": configMapYAML("example", "v1"),
	})
	repo.Publish()
	ignore := "/ign/examples/\n"
	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "ign", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: gittest.FileURL(repo.Bare), Interval: metav1.Duration{Duration: time.Minute}, Ignore: &ignore}})
	create(t, c, &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "ign", Namespace: ns},
		Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "ign"},
			Path: "./ign", TargetNamespace: ns, Prune: true, Interval: metav1.Duration{Duration: time.Minute}}})
	waitKustomization(t, c, ns, "ign", "Ready", func(k *kustomizev1.Kustomization) bool { return isReady(k.Status.Conditions) })
	if configMapValue(c, ns, "kept") != "v1" {
		t.Error("kept.yaml was not applied")
	}
	for _, name := range []string{"draft", "example"} {
		if configMapValue(c, ns, name) != "" {
			t.Errorf("%s was applied though ignored", name)
		}
	}
}

// TestFluxComponents: spec.components adds kustomize components to a
// plain folder's objects.
func TestFluxComponents(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	repo.Commit("components", map[string]string{
		"comp/app/cm.yaml": configMapYAML("with-component", "v1"),
		"comp/components/team/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n" +
			"commonAnnotations: {team: orders}\n",
	})
	repo.Publish()
	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "comp", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: gittest.FileURL(repo.Bare), Interval: metav1.Duration{Duration: time.Minute}}})
	create(t, c, &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "comp", Namespace: ns},
		Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "comp"},
			Path: "./comp/app", TargetNamespace: ns, Prune: true, Interval: metav1.Duration{Duration: time.Minute},
			Components: []string{"../components/team"}}})
	waitKustomization(t, c, ns, "comp", "Ready", func(k *kustomizev1.Kustomization) bool { return isReady(k.Status.Conditions) })
	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "with-component"}, cm); err != nil {
		t.Fatal(err)
	}
	if cm.Annotations["team"] != "orders" {
		t.Errorf("annotations %v: the component was not applied", cm.Annotations)
	}
}
