package controller

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/forgetest"
	"converge.dev/converge/internal/gittest"
)

func webYAML(replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: %d
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: example/web:1}]
`, replicas)
}

// setImage sends what `kubectl set image` sends: an Update that takes
// the image from converge under the manager kubectl-set.
func setImage(t *testing.T, c client.Client, ns, image string) {
	t.Helper()
	patch := `{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"` + image + `"}]}}}}`
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}
	if err := c.Patch(context.Background(), d, client.RawPatch(types.StrategicMergePatchType, []byte(patch)), client.FieldOwner("kubectl-set")); err != nil {
		t.Fatal(err)
	}
}

func deployment(t *testing.T, c client.Client, ns string) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "web"}, d); err != nil {
		t.Fatal(err)
	}
	return d
}

func waitDeployment(t *testing.T, c client.Client, ns, what string, cond func(*appsv1.Deployment) bool) {
	t.Helper()
	d := &appsv1.Deployment{}
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		return c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web"}, d) == nil && cond(d), nil
	})
	if err != nil {
		t.Fatalf("waiting for the Deployment to be %s: %v (replicas %v, containers %v)", what, err, d.Spec.Replicas, d.Spec.Template.Spec.Containers)
	}
}

func driftItem(r *convergev1.DriftReport, path string) *convergev1.DriftItem {
	if r == nil {
		return nil
	}
	for i := range r.Items {
		if r.Items[i].Path == path {
			return &r.Items[i]
		}
	}
	return nil
}

func waitWarning(t *testing.T, c client.Client, ns, kind, name, reason, contains string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		evs := &eventsv1.EventList{}
		if err := c.List(ctx, evs, client.InNamespace(ns)); err != nil {
			return false, nil
		}
		for _, e := range evs.Items {
			if e.Regarding.Kind == kind && e.Regarding.Name == name && e.Reason == reason && e.Type == corev1.EventTypeWarning && strings.Contains(e.Note, contains) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("no Warning Event %s on %s %s mentioning %q", reason, kind, name, contains)
	}
}

const imagePath = `.spec.template.spec.containers[name="web"].image`

// forbidImages is the seed's "not allowed: image changes".
var forbidImages = []convergev1.DriftRule{{Kinds: []string{"apps/*"}, Paths: []string{"/spec/template/spec/containers/*/image"}}}

// openProject makes the namespace's default AppProject, open to all.
func openProject(t *testing.T, c client.Client, ns string) {
	t.Helper()
	create(t, c, &v1alpha1.AppProject{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
		Spec: v1alpha1.AppProjectSpec{SourceRepos: []string{"*"}, Destinations: []v1alpha1.ApplicationDestination{{Server: "*", Namespace: "*"}}}})
}

// TestApplicationDrift runs the cases under the controller with
// real writers: a real HPA (kube-controller-manager's) owns replicas and
// is never fought, with no policy and without a write; a kubectl-set edit
// of an Application without selfHeal is reported, named and left; a
// DriftPolicy that forbids it reverts it at once with a Warning Event.
func TestApplicationDrift(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	repo.Commit("drift app", map[string]string{"drift-app/web.yaml": webYAML(1)})
	repo.Publish()
	openProject(t, c, ns)
	a := app(ns, "drifty", gittest.FileURL(repo.Bare), "drift-app", nil)
	a.Labels = map[string]string{"tier": "prod"}
	a.Spec.SyncPolicy.Automated.SelfHeal = false
	create(t, c, a)
	waitNamed(t, c, ns, "drifty", "Synced", func(a *v1alpha1.Application) bool { return a.Status.Sync.Status == "Synced" })

	// A real HPA, made by the platform team outside Git, scales to 3.
	create(t, c, &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: ptr.To[int32](3), MaxReplicas: 5,
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}}})
	waitDeployment(t, c, ns, "scaled by the HPA", func(d *appsv1.Deployment) bool { return *d.Spec.Replicas == 3 })
	gen := deployment(t, c, ns).Generation
	if err := c.Patch(ctx, &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Name: "drifty", Namespace: ns}},
		client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"argocd.argoproj.io/refresh":"normal"}}}`))); err != nil {
		t.Fatal(err)
	}
	got := waitNamed(t, c, ns, "drifty", "explaining replicas", func(a *v1alpha1.Application) bool {
		return driftItem(a.Status.Drift, ".spec.replicas") != nil
	})
	if it := driftItem(got.Status.Drift, ".spec.replicas"); it.Action != "allow" || it.Category != "controller-managed" || it.Subresource != "scale" {
		t.Errorf("replicas item: %+v", it)
	}
	if got.Status.Sync.Status != "Synced" {
		t.Errorf("with an HPA's replicas: %s", got.Status.Sync.Status)
	}
	for _, cond := range got.Status.Conditions {
		if cond.Type == "Drifted" {
			t.Errorf("allowed drift raised a Drifted condition: %s", cond.Message)
		}
	}

	// A manual edit: reported with its manager, not reverted (no selfHeal).
	setImage(t, c, ns, "example/web:9")
	got = waitNamed(t, c, ns, "drifty", "reporting the edit", func(a *v1alpha1.Application) bool {
		return driftItem(a.Status.Drift, imagePath) != nil
	})
	if it := driftItem(got.Status.Drift, imagePath); it.Manager != "kubectl-set" || it.Category != "unauthorized" || it.Action != "report" ||
		it.Live != `"example/web:9"` || it.Desired != `"example/web:1"` {
		t.Errorf("image item: %+v", it)
	}
	drifted := false
	for _, cond := range got.Status.Conditions {
		drifted = drifted || (cond.Type == "Drifted" && strings.Contains(cond.Message, "1 unauthorized"))
	}
	if got.Status.Sync.Status != "OutOfSync" || !drifted {
		t.Errorf("after the edit: %s, conditions %+v", got.Status.Sync.Status, got.Status.Conditions)
	}
	time.Sleep(2 * time.Second)
	if img := deployment(t, c, ns).Spec.Template.Spec.Containers[0].Image; img != "example/web:9" {
		t.Errorf("reverted without selfHeal or a policy: %s", img)
	}

	// A DriftPolicy that forbids image edits reverts it at once.
	create(t, c, &convergev1.DriftPolicy{ObjectMeta: metav1.ObjectMeta{Name: "production", Namespace: ns},
		Spec: convergev1.DriftPolicySpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}},
			Forbid: forbidImages}})
	waitDeployment(t, c, ns, "reverted", func(d *appsv1.Deployment) bool { return d.Spec.Template.Spec.Containers[0].Image == "example/web:1" })
	waitWarning(t, c, ns, "Application", "drifty", "ForbiddenDrift", "kubectl-set")
	got = waitNamed(t, c, ns, "drifty", "Synced again", func(a *v1alpha1.Application) bool { return a.Status.Sync.Status == "Synced" })
	for _, cond := range got.Status.Conditions {
		if cond.Type == "Drifted" {
			t.Errorf("Drifted after the revert: %s", cond.Message)
		}
	}
	if d := deployment(t, c, ns); *d.Spec.Replicas != 3 {
		t.Errorf("the revert fought the HPA: replicas %d", *d.Spec.Replicas)
	}
	if d := deployment(t, c, ns); d.Generation != gen+2 {
		// +1 the edit, +1 its revert; nothing for replicas.
		t.Errorf("generation %d, want %d", d.Generation, gen+2)
	}
}

// TestKustomizationDrift: a Flux Kustomization with spec.force unset
// takes a kubectl-set edit back (it failed on the conflict before), and
// its status says what it took from whom.
func TestKustomizationDrift(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	repo.Commit("drift ks", map[string]string{"drift-ks/web.yaml": webYAML(1)})
	repo.Publish()
	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "drift", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: gittest.FileURL(repo.Bare), Interval: metav1.Duration{Duration: time.Minute}}})
	create(t, c, &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "drift", Namespace: ns},
		Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "drift"},
			Path: "./drift-ks", TargetNamespace: ns, Prune: true, Interval: metav1.Duration{Duration: time.Hour}}})
	waitKustomization(t, c, ns, "drift", "Ready", func(k *kustomizev1.Kustomization) bool { return isReady(k.Status.Conditions) })

	setImage(t, c, ns, "example/web:9")
	ks := &kustomizev1.Kustomization{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "drift"}, ks); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(ks.DeepCopy())
	ks.Annotations = map[string]string{"reconcile.fluxcd.io/requestedAt": time.Now().String()}
	if err := c.Patch(ctx, ks, patch); err != nil {
		t.Fatal(err)
	}
	ks = waitKustomization(t, c, ns, "drift", "reporting the drift", func(k *kustomizev1.Kustomization) bool {
		return driftItem(k.Status.Drift, imagePath) != nil
	})
	if it := driftItem(ks.Status.Drift, imagePath); it.Manager != "kubectl-set" || it.Category != "unauthorized" {
		t.Errorf("image item: %+v", it)
	}
	if d := meta.FindStatusCondition(ks.Status.Conditions, "Drifted"); d == nil || !strings.Contains(d.Message, "taken back") {
		t.Errorf("Drifted condition: %+v", d)
	}
	if !isReady(ks.Status.Conditions) {
		t.Errorf("not Ready after taking the field back: %+v", ks.Status.Conditions)
	}
	if img := deployment(t, c, ns).Spec.Template.Spec.Containers[0].Image; img != "example/web:1" {
		t.Errorf("image %s, want Git's", img)
	}
}

// TestFieldFight is seed §17.5 with a real second writer: a loop that
// keeps setting the image as "legacy-operator" while converge, under
// selfHeal and a policy that forbids image drift, keeps taking it back.
// After three reverts in a minute converge stops, says who fights over
// which field and how to end it, and the other writer's value stays.
func TestFieldFight(t *testing.T) {
	c, repo := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := clustertest.Namespace(t)
	repo.Commit("fight", map[string]string{"fight/web.yaml": webYAML(1)})
	repo.Publish()
	openProject(t, c, ns)
	create(t, c, &convergev1.DriftPolicy{ObjectMeta: metav1.ObjectMeta{Name: "strict", Namespace: ns},
		Spec: convergev1.DriftPolicySpec{Forbid: forbidImages,
			Fight: &convergev1.DriftFight{Reverts: 3, Window: &metav1.Duration{Duration: time.Minute}}}})
	create(t, c, app(ns, "fought", gittest.FileURL(repo.Bare), "fight", nil))
	waitNamed(t, c, ns, "fought", "Synced", func(a *v1alpha1.Application) bool { return a.Status.Sync.Status == "Synced" })

	var writes atomic.Int32
	go func() {
		for ctx.Err() == nil {
			d := &appsv1.Deployment{}
			if c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web"}, d) == nil && d.Spec.Template.Spec.Containers[0].Image != "example/web:legacy" {
				d.Spec.Template.Spec.Containers[0].Image = "example/web:legacy"
				if c.Update(ctx, d, client.FieldOwner("legacy-operator")) == nil {
					writes.Add(1)
				}
			}
			time.Sleep(300 * time.Millisecond)
		}
	}()
	got := waitNamed(t, c, ns, "fought", "FieldFight", func(a *v1alpha1.Application) bool {
		for _, cond := range a.Status.Conditions {
			if cond.Type == FieldFightCondition {
				return true
			}
		}
		return false
	})
	var msg string
	for _, cond := range got.Status.Conditions {
		if cond.Type == FieldFightCondition {
			msg = cond.Message
		}
	}
	for _, want := range []string{`converge and "legacy-operator"`, imagePath, "3 times within 1m0s",
		"{kinds: [apps/Deployment], names: [web], paths: [/spec/template/spec/containers/web/image]}"} {
		if !strings.Contains(msg, want) {
			t.Errorf("FieldFight message lacks %q: %s", want, msg)
		}
	}
	waitWarning(t, c, ns, "Application", "fought", FieldFightCondition, "legacy-operator")
	// converge stopped: the other writer's value stays and nobody writes.
	waitDeployment(t, c, ns, "the other writer's", func(d *appsv1.Deployment) bool {
		return d.Spec.Template.Spec.Containers[0].Image == "example/web:legacy"
	})
	gen := deployment(t, c, ns).Generation
	time.Sleep(3 * time.Second)
	if d := deployment(t, c, ns); d.Generation != gen || d.Spec.Template.Spec.Containers[0].Image != "example/web:legacy" {
		t.Errorf("still fighting: generation %d → %d, image %s", gen, d.Generation, d.Spec.Template.Spec.Containers[0].Image)
	}
	t.Logf("the other writer wrote %d times", writes.Load())
}

// TestOverrideExpires is the seed's emergency path (§3.2): an override
// holds an edited image against a forbid rule, shown as emergency-manual
// with who and why; at expiry the controller reverts it and the
// override's status says so.
func TestOverrideExpires(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	repo.Commit("override", map[string]string{"override/web.yaml": webYAML(1)})
	repo.Publish()
	openProject(t, c, ns)
	create(t, c, &convergev1.DriftPolicy{ObjectMeta: metav1.ObjectMeta{Name: "strict", Namespace: ns}, Spec: convergev1.DriftPolicySpec{Forbid: forbidImages}})
	a := app(ns, "held", gittest.FileURL(repo.Bare), "override", nil)
	a.Spec.SyncPolicy.Automated.SelfHeal = false
	create(t, c, a)
	waitNamed(t, c, ns, "held", "Synced", func(a *v1alpha1.Application) bool { return a.Status.Sync.Status == "Synced" })

	expires := time.Now().Add(12 * time.Second)
	create(t, c, &convergev1.DriftOverride{ObjectMeta: metav1.ObjectMeta{Name: "hotfix", Namespace: ns},
		Spec: convergev1.DriftOverrideSpec{Unit: convergev1.UnitReference{Kind: "Application", Name: "held"},
			Rules:  []convergev1.DriftRule{{Kinds: []string{"apps/Deployment"}, Names: []string{"web"}, Paths: []string{"/spec/template/spec/containers/web/image"}}},
			Reason: "INC-7: pin the image", Expires: metav1.NewTime(expires), RequestedBy: "alice"}})
	waitOverride(t, c, ns, "hotfix", "Active")
	setImage(t, c, ns, "example/web:hotfix")
	got := waitNamed(t, c, ns, "held", "holding the override", func(a *v1alpha1.Application) bool {
		it := driftItem(a.Status.Drift, imagePath)
		return it != nil && it.Action == "override"
	})
	if it := driftItem(got.Status.Drift, imagePath); it.Category != "emergency-manual" || !strings.Contains(it.Rule, "alice") || !strings.Contains(it.Rule, "INC-7") {
		t.Errorf("held item: %+v", it)
	}
	if img := deployment(t, c, ns).Spec.Template.Spec.Containers[0].Image; img != "example/web:hotfix" || time.Now().After(expires) {
		t.Fatalf("reverted under the override: %s", img)
	}
	o := &convergev1.DriftOverride{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "hotfix"}, o); err != nil || o.Status.Phase != "Active" {
		t.Errorf("override status: %+v %v", o.Status, err)
	}

	waitDeployment(t, c, ns, "reverted at expiry", func(d *appsv1.Deployment) bool { return d.Spec.Template.Spec.Containers[0].Image == "example/web:1" })
	if time.Now().Before(expires) {
		t.Error("reverted before the override expired")
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		return c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "hotfix"}, o) == nil && o.Status.Phase == "Expired", nil
	})
	if err != nil || !strings.Contains(o.Status.Message, "reverted") {
		t.Errorf("override status after expiry: %+v %v", o.Status, err)
	}
}

// TestOverrideBackport: an override whose expiry action is backport, on
// an Application whose repository is a real Gitea. At expiry the
// controller opens a pull request writing the live image into Git and
// keeps the live value (a forbid rule notwithstanding) while it waits;
// once it is merged and synced, nothing drifts and the override is
// Expired, backported.
func TestOverrideBackport(t *testing.T) {
	c, _ := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	forge := forgetest.Start(t)
	repo := forge.CreateRepo(t, "held")
	repo.Push("initial", map[string]string{"app/web.yaml": "# the web tier\n" + webYAML(1)})
	url := strings.Replace(repo.CloneURL, "http://", "http://"+forge.User+":"+forge.Token+"@", 1)
	openProject(t, c, ns)
	create(t, c, &convergev1.DriftPolicy{ObjectMeta: metav1.ObjectMeta{Name: "strict", Namespace: ns}, Spec: convergev1.DriftPolicySpec{Forbid: forbidImages}})
	create(t, c, app(ns, "held", url, "app", nil))
	waitNamed(t, c, ns, "held", "Synced", func(a *v1alpha1.Application) bool { return a.Status.Sync.Status == "Synced" })

	create(t, c, &convergev1.DriftOverride{ObjectMeta: metav1.ObjectMeta{Name: "hotfix", Namespace: ns},
		Spec: convergev1.DriftOverrideSpec{Unit: convergev1.UnitReference{Kind: "Application", Name: "held"},
			Rules:  []convergev1.DriftRule{{Kinds: []string{"apps/Deployment"}, Names: []string{"web"}, Paths: []string{"/spec/template/spec/containers/web/image"}}},
			Reason: "INC-9: keep the hotfix", Expires: metav1.NewTime(time.Now().Add(12 * time.Second)), OnExpiry: "backport", RequestedBy: "bob"}})
	waitOverride(t, c, ns, "hotfix", "Active")
	setImage(t, c, ns, "example/web:hotfix")

	o := &convergev1.DriftOverride{}
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		return c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "hotfix"}, o) == nil && o.Status.Phase == "Backporting", nil
	})
	if err != nil {
		t.Fatalf("no backport after expiry: %+v %v", o.Status, err)
	}
	if !strings.Contains(o.Status.Message, "pull request #1 "+forge.URL) {
		t.Errorf("status does not name the pull request: %s", o.Status.Message)
	}
	time.Sleep(2 * time.Second)
	if img := deployment(t, c, ns).Spec.Template.Spec.Containers[0].Image; img != "example/web:hotfix" {
		t.Fatalf("reverted while the backport waits: %s", img)
	}
	var pulls []struct {
		Number int `json:"number"`
		Head   struct {
			Ref string `json:"ref"`
		} `json:"head"`
	}
	forge.API(t, "GET", "/repos/"+forge.User+"/held/pulls?state=open", nil, &pulls)
	if len(pulls) != 1 || !strings.HasPrefix(pulls[0].Head.Ref, "converge-backport-") {
		t.Fatalf("open pull requests: %+v", pulls)
	}
	// The pull request's file keeps its comment and says the live image.
	var file struct {
		Content string `json:"content"`
	}
	forge.API(t, "GET", "/repos/"+forge.User+"/held/contents/app/web.yaml?ref="+pulls[0].Head.Ref, nil, &file)
	data, _ := base64.StdEncoding.DecodeString(file.Content)
	if !strings.Contains(string(data), "# the web tier") || !strings.Contains(string(data), "example/web:hotfix") {
		t.Errorf("the pull request's web.yaml:\n%s", data)
	}

	// Merged (Gitea may answer 405 while it computes mergeability).
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		return tryMerge(forge, "held", pulls[0].Number), nil
	})
	if err != nil {
		t.Fatalf("could not merge the backport")
	}
	if err := c.Patch(ctx, &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Name: "held", Namespace: ns}},
		client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"argocd.argoproj.io/refresh":"normal"}}}`))); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		return c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "hotfix"}, o) == nil && o.Status.Phase == "Expired", nil
	})
	if err != nil || !strings.Contains(o.Status.Message, "backported") {
		t.Fatalf("after the merge: %+v %v", o.Status, err)
	}
	// The override may expire before the Application's next status
	// write: the drift clears with the reconcile at the merged commit.
	waitNamed(t, c, ns, "held", "Synced without drift at the merge", func(a *v1alpha1.Application) bool {
		return a.Status.Sync.Status == "Synced" && a.Status.Drift == nil
	})
	if img := deployment(t, c, ns).Spec.Template.Spec.Containers[0].Image; img != "example/web:hotfix" {
		t.Errorf("after the merge the Deployment runs %s", img)
	}
}

// waitOverride waits for an override's phase. An emergency change made
// before the controller holds the override (its status says Active) is
// still under the policy: the tests, like an operator, wait for it.
func waitOverride(t *testing.T, c client.Client, ns, name, phase string) {
	t.Helper()
	o := &convergev1.DriftOverride{}
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		return c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, o) == nil && o.Status.Phase == phase, nil
	})
	if err != nil {
		t.Fatalf("override %s never %s: %+v", name, phase, o.Status)
	}
}

// tryMerge merges a pull request, false while Gitea is not ready to.
func tryMerge(f *forgetest.Forge, repo string, n int) bool {
	body, _ := json.Marshal(map[string]string{"Do": "merge"})
	req, _ := http.NewRequest("POST", fmt.Sprintf("%sapi/v1/repos/%s/%s/pulls/%d/merge", f.URL, f.User, repo, n), bytes.NewReader(body))
	req.Header.Set("Authorization", "token "+f.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode < 300
}

// TestForbiddenDeletion: the seed's "not allowed: NetworkPolicy
// removal". An Application without selfHeal whose NetworkPolicy is
// deleted by hand gets it back at once, with a Warning Event, because a
// DriftPolicy forbids that deletion; the deletion is unattributed (no
// record names who deletes).
func TestForbiddenDeletion(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	repo.Commit("netpol", map[string]string{"netpol/np.yaml": "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-all}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n"})
	repo.Publish()
	openProject(t, c, ns)
	create(t, c, &convergev1.DriftPolicy{ObjectMeta: metav1.ObjectMeta{Name: "keep-netpols", Namespace: ns},
		Spec: convergev1.DriftPolicySpec{Forbid: []convergev1.DriftRule{{Kinds: []string{"networking.k8s.io/NetworkPolicy"}, Deletion: true}}}})
	a := app(ns, "guarded", gittest.FileURL(repo.Bare), "netpol", nil)
	a.Spec.SyncPolicy.Automated.SelfHeal = false
	create(t, c, a)
	waitNamed(t, c, ns, "guarded", "Synced", func(a *v1alpha1.Application) bool { return a.Status.Sync.Status == "Synced" })
	np := &networkingv1.NetworkPolicy{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "deny-all"}, np); err != nil {
		t.Fatal(err)
	}
	uid := np.UID
	if err := c.Delete(ctx, np); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		return c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "deny-all"}, np) == nil && np.UID != uid, nil
	})
	if err != nil {
		t.Fatalf("the deleted NetworkPolicy was not recreated: %v", err)
	}
	waitWarning(t, c, ns, "Application", "guarded", "ForbiddenDrift", "NetworkPolicy")
}
