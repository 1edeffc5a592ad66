package engine

import (
	"context"
	"strings"
	"testing"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/drift"
)

const webImage = `.spec.template.spec.containers[name="web"].image`

// setImage does what `kubectl set image` does: an Update under its own
// manager name, which takes the field from converge (MANAGEDFIELDS.md).
func (e *env) setImage(image string) {
	e.t.Helper()
	patch := `{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"` + image + `"}]}}}}`
	if _, err := e.cs.AppsV1().Deployments(e.ns).Patch(context.Background(), "web", types.StrategicMergePatchType, []byte(patch),
		metav1.PatchOptions{FieldManager: "kubectl-set"}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) image() string {
	e.t.Helper()
	d, err := e.cs.AppsV1().Deployments(e.ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0].Image
}

func item(items []drift.Item, path string) (drift.Item, bool) {
	for _, it := range items {
		if it.Path == path {
			return it, true
		}
	}
	return drift.Item{}, false
}

// TestManualEditIsDrift is the first case: a manual edit is a
// difference with its manager named, never an error, and a sync takes
// the field back and says from whom. Refusing conflicts is an option.
func TestManualEditIsDrift(t *testing.T) {
	e := newEnv(t, "app")
	e.sync(SyncOptions{})
	e.setImage("example/web:9.9")
	ctx := context.Background()

	rep, err := e.eng.Diff(ctx, e.unit, SyncOptions{})
	if err != nil {
		t.Fatalf("diff after kubectl set image: %v", err)
	}
	if got := actions(rep); got != "update Deployment/web" {
		t.Errorf("diff: %s, want the Deployment updated", got)
	}
	it, ok := item(rep.Drift, webImage)
	if !ok || it.Manager != "kubectl-set" || it.Category != drift.Unauthorized || it.Action != drift.Report ||
		it.Desired != `"example/web:1.0"` || it.Live != `"example/web:9.9"` || it.Time == nil {
		t.Fatalf("drift item: %+v (found %v), all: %v", it, ok, rep.Drift)
	}
	if _, err := e.eng.Diff(ctx, e.unit, SyncOptions{RefuseConflicts: true}); err == nil || !strings.Contains(err.Error(), "kubectl-set") {
		t.Errorf("diff refusing conflicts: %v, want the conflict with kubectl-set", err)
	}

	rep = e.sync(SyncOptions{})
	if e.image() != "example/web:1.0" {
		t.Errorf("after sync: image %s, want Git's", e.image())
	}
	if it, ok := item(rep.Drift, webImage); !ok || it.Manager != "kubectl-set" {
		t.Errorf("sync reports no field taken from kubectl-set: %v", rep.Drift)
	}
	rep, err = e.eng.Diff(ctx, e.unit, SyncOptions{})
	if err != nil || actions(rep) != "" || len(rep.Drift) != 0 {
		t.Errorf("diff after the sync: %s %v %v, want nothing", actions(rep), rep.Drift, err)
	}
}

// TestDriftPolicyDecides: the seed's §8.1 policy leaves an HPA's replicas
// alone without writing anything, forbids an image edit, and a removed
// annotation is drift that names nobody.
func TestDriftPolicyDecides(t *testing.T) {
	e := newEnv(t, "app")
	pol, err := DriftPolicyOf([]convergev1.DriftPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "production"}, Spec: convergev1.DriftPolicySpec{
		Allow: []convergev1.DriftRule{{Paths: []string{"/status", "/metadata/finalizers"}},
			{Kinds: []string{"apps/Deployment"}, Paths: []string{"/spec/replicas"}, When: "HPATargets"}},
		Forbid:  []convergev1.DriftRule{{Kinds: []string{"apps/*"}, Paths: []string{"/spec/template/spec/containers/*/image"}}},
		Default: "report"}}})
	if err != nil {
		t.Fatal(err)
	}
	e.unit.Drift = pol
	e.sync(SyncOptions{})
	ctx := context.Background()
	// The HPA controller writes /scale as kube-controller-manager.
	s := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: e.ns}, Spec: autoscalingv1.ScaleSpec{Replicas: 4}}
	if _, err := e.cs.AppsV1().Deployments(e.ns).UpdateScale(ctx, "web", s, metav1.UpdateOptions{FieldManager: "kube-controller-manager"}); err != nil {
		t.Fatal(err)
	}
	e.setImage("example/web:9.9")

	rep := e.sync(SyncOptions{})
	after, _ := e.cs.AppsV1().Deployments(e.ns).Get(ctx, "web", metav1.GetOptions{})
	if *after.Spec.Replicas != 4 || e.image() != "example/web:1.0" {
		t.Errorf("after sync: replicas %d (want the HPA's 4), image %s (want Git's)", *after.Spec.Replicas, e.image())
	}
	if r, ok := item(rep.Drift, ".spec.replicas"); !ok || r.Action != drift.Allow || r.Category != drift.ControllerManaged || !strings.Contains(r.Evidence, "HorizontalPodAutoscaler") {
		t.Errorf("replicas item: %+v", r)
	}
	if i, ok := item(rep.Drift, webImage); !ok || i.Action != drift.Revert || i.Rule != "DriftPolicy production: forbid[0]" {
		t.Errorf("image item: %+v", i)
	}

	// Steady: converge writes nothing more (the Deployment's status is
	// the deployment controller's); replicas stay the HPA's.
	rep = e.sync(SyncOptions{})
	again, _ := e.cs.AppsV1().Deployments(e.ns).Get(ctx, "web", metav1.GetOptions{})
	if again.Generation != after.Generation || actions(rep) != "" || *again.Spec.Replicas != 4 {
		t.Errorf("second sync: %s, generation %d → %d, replicas %d", actions(rep), after.Generation, again.Generation, *again.Spec.Replicas)
	}
	if r, ok := item(rep.Drift, ".spec.replicas"); !ok || r.Action != drift.Allow {
		t.Errorf("replicas no longer explained: %v", rep.Drift)
	}

	// A key someone removed names nobody.
	if _, err := e.cs.CoreV1().ConfigMaps(e.ns).Patch(ctx, "extra", types.JSONPatchType,
		[]byte(`[{"op":"remove","path":"/data/k"}]`), metav1.PatchOptions{FieldManager: "kubectl-patch"}); err != nil {
		t.Fatal(err)
	}
	rep, err = e.eng.Diff(ctx, e.unit, SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := item(rep.Drift, ".data.k"); !ok || a.Manager != "" || a.Category != drift.Unattributed || a.Action != drift.Report || a.Desired != `"v"` {
		t.Errorf("removed key: %+v, all %v", a, rep.Drift)
	}
}
