package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/promotion"
	"converge.dev/converge/internal/stage"
)

// rolloutBase is the base of an application that ships with Argo
// Rollouts: the seed's §14 canary, as its users keep it in Git.
const rolloutBase = `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: orders-api}
spec:
  replicas: 2
  selector: {matchLabels: {app: orders-api}}
  strategy:
    canary:
      steps:
      - setWeight: 50
      - pause: {duration: 5m}
  template:
    metadata: {labels: {app: orders-api}}
    spec:
      containers:
      - name: api
        image: registry.example.com/orders-api
`

func prodRolloutPatch(ref string) string {
	return strings.Replace(prodPatch(ref), "apiVersion: apps/v1\nkind: Deployment", "apiVersion: argoproj.io/v1alpha1\nkind: Rollout", 1)
}

var argoRolloutList = schema.GroupVersionKind{Group: "argoproj.io", Version: "v1alpha1", Kind: "RolloutList"}

// rolloutsStandIn plays the part of the Argo Rollouts controller, which
// this test cannot run: for each Rollout it keeps one ReplicaSet per pod
// template (labelled rollouts-pod-template-hash, as Argo does) and writes
// the status Argo documents. A new template goes straight to 100%, unless
// the Rollout is marked to abort: then the new ReplicaSet stays at zero,
// the stable one keeps serving, and status says abort, Degraded,
// "RolloutAborted". A template back at the stable hash is healthy again
// at once, as Argo's fast rollback is.
type rolloutsStandIn struct {
	c          client.Client
	namespaces []string
	mu         sync.Mutex
	abortNext  map[string]bool   // ns/name: abort the next new template
	abandoned  map[string]string // ns/name: the template hash given up
}

func startRolloutsStandIn(t *testing.T, c client.Client, namespaces ...string) *rolloutsStandIn {
	s := &rolloutsStandIn{c: c, namespaces: namespaces, abortNext: map[string]bool{}, abandoned: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			for _, ns := range s.namespaces {
				list := &unstructured.UnstructuredList{}
				list.SetGroupVersionKind(argoRolloutList)
				if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
					continue
				}
				for i := range list.Items {
					_ = s.sync(ctx, &list.Items[i]) // the next tick tries again
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func (s *rolloutsStandIn) abort(ns, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.abortNext[ns+"/"+name] = true
}

func (s *rolloutsStandIn) sync(ctx context.Context, ro *unstructured.Unstructured) error {
	var spec struct {
		Replicas *int32                 `json:"replicas"`
		Selector *metav1.LabelSelector  `json:"selector"`
		Template corev1.PodTemplateSpec `json:"template"`
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(ro.Object["spec"].(map[string]any), &spec); err != nil {
		return err
	}
	raw, _ := json.Marshal(spec.Template)
	sum := sha256.Sum256(raw)
	hash := hex.EncodeToString(sum[:])[:10]
	want := int32(1)
	if spec.Replicas != nil {
		want = *spec.Replicas
	}
	stable, _, _ := unstructured.NestedString(ro.Object, "status", "stableRS")
	key := ro.GetNamespace() + "/" + ro.GetName()
	s.mu.Lock()
	if s.abortNext[key] && stable != "" && hash != stable {
		delete(s.abortNext, key)
		s.abandoned[key] = hash
	}
	aborted := stable != "" && hash != stable && s.abandoned[key] == hash
	s.mu.Unlock()
	status := map[string]any{"observedGeneration": strconv.FormatInt(ro.GetGeneration(), 10), "replicas": want,
		"currentPodHash": hash, "abort": aborted, "readyReplicas": want, "availableReplicas": want}
	if aborted {
		if err := s.replicaSet(ctx, ro, spec.Selector, hash, &spec.Template, 0); err != nil {
			return err
		}
		if err := s.replicaSet(ctx, ro, spec.Selector, stable, nil, want); err != nil {
			return err
		}
		status["stableRS"], status["updatedReplicas"], status["phase"] = stable, 0, "Degraded"
		status["message"] = "RolloutAborted: Rollout aborted update to revision 2"
	} else {
		if err := s.replicaSet(ctx, ro, spec.Selector, hash, &spec.Template, want); err != nil {
			return err
		}
		if err := s.scaleDownOthers(ctx, ro, hash); err != nil {
			return err
		}
		status["stableRS"], status["updatedReplicas"], status["phase"], status["message"] = hash, want, "Healthy", ""
	}
	patch, _ := json.Marshal(map[string]any{"status": status})
	return s.c.Status().Patch(ctx, ro, client.RawPatch(types.MergePatchType, patch))
}

// replicaSet makes the Rollout's ReplicaSet for hash run replicas pods;
// tmpl is needed only to create it.
func (s *rolloutsStandIn) replicaSet(ctx context.Context, ro *unstructured.Unstructured, sel *metav1.LabelSelector, hash string, tmpl *corev1.PodTemplateSpec, replicas int32) error {
	rs := &appsv1.ReplicaSet{}
	err := s.c.Get(ctx, types.NamespacedName{Namespace: ro.GetNamespace(), Name: ro.GetName() + "-" + hash}, rs)
	if err == nil {
		if *rs.Spec.Replicas == replicas {
			return nil
		}
		rs.Spec.Replicas = ptr.To(replicas)
		return s.c.Update(ctx, rs)
	}
	if !apierrors.IsNotFound(err) || tmpl == nil {
		return err
	}
	labels := map[string]string{"rollouts-pod-template-hash": hash}
	match := map[string]string{"rollouts-pod-template-hash": hash}
	for k, v := range sel.MatchLabels {
		match[k] = v
	}
	t := tmpl.DeepCopy()
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	for k, v := range labels {
		t.Labels[k] = v
	}
	for k, v := range t.Labels {
		labels[k] = v
	}
	rs = &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: ro.GetName() + "-" + hash, Namespace: ro.GetNamespace(), Labels: labels,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: ro.GetName(), UID: ro.GetUID(), Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: match}, Template: *t}}
	return s.c.Create(ctx, rs)
}

func (s *rolloutsStandIn) scaleDownOthers(ctx context.Context, ro *unstructured.Unstructured, keep string) error {
	var list appsv1.ReplicaSetList
	if err := s.c.List(ctx, &list, client.InNamespace(ro.GetNamespace())); err != nil {
		return err
	}
	for i := range list.Items {
		rs := &list.Items[i]
		owner := metav1.GetControllerOf(rs)
		if owner == nil || owner.UID != ro.GetUID() || rs.Labels["rollouts-pod-template-hash"] == keep || *rs.Spec.Replicas == 0 {
			continue
		}
		rs.Spec.Replicas = ptr.To(int32(0))
		if err := s.c.Update(ctx, rs); err != nil {
			return err
		}
	}
	return nil
}

// TestClusterRollback is the seed's §14 with Git kept true. Every stage
// ships an Argo Rollout. Staging's Rollout aborts the update to a new
// digest and goes back to its stable pods. converge reports it as
// "rolled back in cluster" (stage status, a Pipeline condition, the
// promotion that brought the digest Failed at once), promotes nothing
// from staging (prod is never proposed anything; a manual promotion is
// refused), and opens no pull request until the Pipeline consents. With
// onClusterRollback: propose it opens the rollback pull request that pins
// what runs; once merged the Rollout is healthy on it, the stage is
// Verified and held, and the report clears.
func TestClusterRollback(t *testing.T) {
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	image := strings.TrimPrefix(reg.URL, "http://") + "/orders-api"
	d1 := pushRandom(t, image+":1.0.0")
	d2 := pushRandom(t, image+":1.1.0")
	serveKind(t, "argoproj.io", "v1alpha1", "Rollout", "rollouts")
	w := newPromotionWorldWith(t, d1, image, map[string]string{
		"apps/orders/base/deployment.yaml":     rolloutBase,
		"apps/orders/overlays/prod/image.yaml": prodRolloutPatch(ordersImage + ":1.0.0@" + d1),
	})
	ctx := t.Context()
	argo := startRolloutsStandIn(t, w.c, w.dev, w.staging, w.prod)
	ci := func(d string) map[string]string {
		return map[string]string{
			promotion.EvidencePath(d, "build"): evidence("build", d, "result: passed\n"),
			promotion.EvidencePath(d, "scan"):  evidence("scan", d, "critical: 0\n"),
		}
	}
	w.push("ci: evidence of 1.0.0", ci(d1))
	create(t, w.c, w.pipelineObject(time.Second, time.Second))
	w.waitStages(map[string]string{"dev": d1, "staging": d1, "prod": d1})

	// Staging's Rollout will give up the next update (its analysis
	// fails, say). CI releases 1.1.0 to dev; staging takes it by an
	// auto-merged promotion.
	argo.abort(w.staging, "orders-api")
	files := ci(d2)
	files["apps/orders/overlays/dev/kustomization.yaml"] = overlay("1.1.0", d2)
	w.push("ci: 1.1.0", files)
	w.refresh("orders-dev")
	id2 := promotion.FreightID([]promotion.Artifact{{Name: "app", Image: image, Digest: d2}})
	bad := w.waitPromotion(promotionName("orders-api", "staging", id2), "Failed", 3*time.Minute, func(p *convergev1.Promotion) bool {
		return p.Status.Phase == convergev1.PhaseFailed
	})
	if !strings.Contains(bad.Status.Message, "rolled back in cluster: Rollout "+w.staging+"/orders-api: RolloutAborted") || bad.Status.PR == nil || bad.Status.PR.MergeCommit == "" {
		t.Fatalf("the promotion the Rollout refused: merged %+v, %s", bad.Status.PR, bad.Status.Message)
	}
	var rb *convergev1.StageRollback
	err := wait.PollUntilContextTimeout(ctx, 300*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		rb = stage.StatusOf(w.pipelineNow(), "staging").RolledBack
		return rb != nil, nil
	})
	if err != nil {
		t.Fatalf("staging's rollback in the cluster was never reported: %+v", stage.StatusOf(w.pipelineNow(), "staging"))
	}
	if want := []string{image + ":1.0.0@" + d1}; fmt.Sprint(rb.Running) != fmt.Sprint(want) || fmt.Sprint(rb.Pinned) != fmt.Sprint([]string{image + ":1.1.0@" + d2}) {
		t.Errorf("staging's rollback: runs %v, Git pins %v; want runs %v", rb.Running, rb.Pinned, want)
	}
	p := w.pipelineNow()
	st := stage.StatusOf(p, "staging")
	if st.Healthy || len(st.Digests) != 0 || !strings.Contains(st.Message, "rolled back in cluster") {
		t.Errorf("staging while rolled back: healthy=%v digests=%v %q", st.Healthy, st.Digests, st.Message)
	}
	if c := meta.FindStatusCondition(p.Status.Conditions, ConditionRolledBackInCluster); c == nil || c.Status != metav1.ConditionTrue ||
		!strings.Contains(c.Message, "stage staging: rolled back in cluster") {
		t.Errorf("the Pipeline's %s condition: %+v", ConditionRolledBackInCluster, c)
	}
	// Nothing is promoted onward: a manual promotion from staging, as
	// `converge promote orders-api --stage prod` picks it, is refused.
	src, _ := stage.SpecOf(p, "staging")
	running, err := stage.Observe(ctx, w.c, p, src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := running.Pick("staging", ""); err == nil || !strings.Contains(err.Error(), "stage staging was rolled back in cluster") {
		t.Errorf("a promotion from the rolled-back stage: %v", err)
	}
	// Without consent, converge writes nothing to Git about it.
	time.Sleep(6 * time.Second) // three rounds
	promos := func() []convergev1.Promotion {
		var list convergev1.PromotionList
		if err := w.c.List(ctx, &list, client.InNamespace(w.ns)); err != nil {
			t.Fatal(err)
		}
		return list.Items
	}
	for _, o := range promos() {
		if o.Spec.Stage == "staging" && o.Spec.Reason == "rollback" {
			t.Fatalf("a pull request to match the cluster without the Pipeline's consent: %s", o.Name)
		}
	}

	// The Pipeline consents: the rollback pull request pins what runs.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := w.pipelineNow()
		p.Spec.Stages[1].OnClusterRollback = "propose"
		return w.c.Update(ctx, p)
	}); err != nil {
		t.Fatal(err)
	}
	var fixName string
	err = wait.PollUntilContextTimeout(ctx, 300*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		if rb := stage.StatusOf(w.pipelineNow(), "staging").RolledBack; rb != nil {
			fixName = rb.Promotion
		}
		return fixName != "", nil
	})
	if err != nil {
		t.Fatalf("no promotion to make Git match: %+v", stage.StatusOf(w.pipelineNow(), "staging"))
	}
	fix := w.waitPromotion(fixName, "Verified", 3*time.Minute, func(p *convergev1.Promotion) bool { return p.Status.Phase == convergev1.PhaseVerified })
	if fix.Spec.Reason != "rollback" || fix.Spec.Freight.Artifacts[0].Digest != d1 || fix.Annotations[ClusterRollbackAnnotation] == "" ||
		fix.Status.PR == nil || fix.Status.PR.MergeCommit == "" {
		t.Fatalf("the promotion that makes Git match: %+v %+v", fix.Spec, fix.Status.PR)
	}
	if len(fix.Status.Previous) != 1 || fix.Status.Previous[0].Digest != d2 {
		t.Errorf("the fix's previous is what Git pinned: %+v", fix.Status.Previous)
	}
	var pr struct {
		Body string `json:"body"`
	}
	w.f.API(t, "GET", fmt.Sprintf("/repos/%s/deploy/pulls/%d", w.f.User, fix.Status.PR.Number), nil, &pr)
	if !strings.Contains(pr.Body, "**Git follows the cluster.** Stage **staging** was rolled back in cluster") {
		t.Errorf("the fix's pull request body:\n%s", pr.Body)
	}
	if got := w.fileAt("apps/orders/overlays/staging/kustomization.yaml", "main"); !strings.Contains(got, d1) || strings.Contains(got, d2) {
		t.Errorf("staging's overlay on main after the fix:\n%s", got)
	}
	w.waitStages(map[string]string{"staging": d1})
	err = wait.PollUntilContextTimeout(ctx, 300*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		p := w.pipelineNow()
		c := meta.FindStatusCondition(p.Status.Conditions, ConditionRolledBackInCluster)
		return stage.StatusOf(p, "staging").RolledBack == nil && c != nil && c.Status == metav1.ConditionFalse, nil
	})
	if err != nil {
		t.Errorf("the report did not clear once Git matched: %+v", w.pipelineNow().Status)
	}
	if hold := stage.StatusOf(w.pipelineNow(), "staging").Hold; hold == nil || hold.Promotion != fix.Name {
		t.Errorf("staging is not held after Git followed the rollback: %+v", hold)
	}
	// In all this, prod was never proposed anything.
	for _, o := range promos() {
		if o.Spec.Stage == "prod" {
			t.Errorf("prod got promotion %s (%s) from a stage rolled back in its cluster", o.Name, o.Spec.Reason)
		}
	}
}

// TestStageReadsCanary reads a Flagger Canary as Flagger leaves it: its
// target Deployment is Git's spec, scaled to zero; <target>-primary
// serves. Succeeded with the primary on Git's digest is complete; Failed
// is a rollback in the cluster, with the primary's pods what runs.
func TestStageReadsCanary(t *testing.T) {
	c, _ := setup(t)
	ctx := t.Context()
	ns := clustertest.Namespace(t)
	serveKind(t, "flagger.app", "v1beta1", "Canary", "canaries")
	d1, d2 := digestOf("orders 1.0.0"), digestOf("orders 1.1.0")
	helm := map[string]string{"meta.helm.sh/release-name": "orders", "meta.helm.sh/release-namespace": ns}
	suspendedRelease(t, c, ns)
	deployment := func(name, ref string, replicas int32) *appsv1.Deployment {
		labels := map[string]string{"app": name}
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: helm},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: ordersImage + ":" + ref}}}}}}
	}
	// Git (through the release) asks for 1.1.0; Flagger gave up on it.
	create(t, c, deployment("orders", "1.1.0@"+d2, 0))
	primary := deployment("orders-primary", "1.0.0@"+d1, 1)
	create(t, c, primary)
	canary := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "flagger.app/v1beta1", "kind": "Canary",
		"metadata": map[string]any{"name": "orders", "namespace": ns, "annotations": map[string]any{"meta.helm.sh/release-name": "orders", "meta.helm.sh/release-namespace": ns}},
		"spec":     map[string]any{"targetRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "orders"}}}}
	create(t, c, canary)
	phase := func(p, msg string) {
		t.Helper()
		patch, _ := json.Marshal(map[string]any{"status": map[string]any{"phase": p,
			"conditions": []any{map[string]any{"type": "Promoted", "status": "False", "reason": p, "message": msg}}}})
		if err := c.Status().Patch(ctx, canary, client.RawPatch(types.MergePatchType, patch)); err != nil {
			t.Fatal(err)
		}
	}
	phase("Failed", "Canary analysis failed, Deployment scaled to zero.")
	arts := []promotion.Artifact{{Name: "app", Image: ordersImage}}
	read := func(what string, ok func(stage.Unit, stage.Running) bool) (stage.Unit, stage.Running) {
		t.Helper()
		var u stage.Unit
		var r stage.Running
		err := wait.PollUntilContextTimeout(ctx, 300*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			var err error
			if u, err = stage.Read(ctx, c, stage.Target{Kind: "HelmRelease", Namespace: ns, Name: "orders"}); err != nil {
				return false, err
			}
			r = stage.Decide([]stage.Unit{u}, arts)
			return ok(u, r), nil
		})
		if err != nil {
			t.Fatalf("%s: %v\nworkloads %+v\nrunning %+v", what, err, u.Workloads, r)
		}
		return u, r
	}
	u, r := read("the failed Canary as a rollback", func(u stage.Unit, r stage.Running) bool {
		return r.Rollback != nil && len(r.Rollback.Running) == 1
	})
	if len(u.Workloads) != 1 || u.Workloads[0].Kind != "Canary" {
		t.Errorf("workloads: want the Canary alone (its Deployments read through it): %+v", u.Workloads)
	}
	if got := r.Rollback.Running[0].Reference(); got != ordersImage+":1.0.0@"+d1 || !strings.Contains(r.Rollback.Why, "Canary analysis failed, Deployment scaled to zero.") {
		t.Errorf("the rollback runs %s: %s", got, r.Rollback.Why)
	}
	if len(r.Digests) != 0 || r.Healthy {
		t.Errorf("a rolled-back stage runs nothing promotable: %+v", r)
	}
	// Flagger promotes a later analysis: the primary gets Git's spec.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(primary), primary); err != nil {
			return err
		}
		primary.Spec.Template.Spec.Containers[0].Image = ordersImage + ":1.1.0@" + d2
		return c.Update(ctx, primary)
	}); err != nil {
		t.Fatal(err)
	}
	phase("Succeeded", "Canary analysis completed successfully, promotion finished.")
	// The suspended release is never Ready: everything else must be.
	notReady := "HelmRelease " + ns + "/orders is not reconciled yet"
	u, r = read("the promoted Canary", func(_ stage.Unit, r stage.Running) bool { return r.Why == notReady })
	if r.Rollback != nil || r.Digests["app"] != d2 || !u.Workloads[0].Complete {
		t.Errorf("after promotion: %+v\n%+v", r, u.Workloads)
	}
}

// TestStageReadsRolloutWorkloadRef reads an aborted Argo Rollout whose
// pod template is a Deployment's (spec.workloadRef): the Deployment,
// which Argo scales to zero, is read through the Rollout, not alone, and
// the stable ReplicaSet's template is what runs.
func TestStageReadsRolloutWorkloadRef(t *testing.T) {
	c, _ := setup(t)
	ctx := t.Context()
	ns := clustertest.Namespace(t)
	serveKind(t, "argoproj.io", "v1alpha1", "Rollout", "rollouts")
	d1, d2 := digestOf("orders 1.0.0"), digestOf("orders 1.1.0")
	helm := map[string]string{"meta.helm.sh/release-name": "orders", "meta.helm.sh/release-namespace": ns}
	suspendedRelease(t, c, ns)
	labels := map[string]string{"app": "orders"}
	tmpl := func(ref string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: ordersImage + ":" + ref}}}}
	}
	create(t, c, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: ns, Annotations: helm},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(0)), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl("1.1.0@" + d2)}})
	ro := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": "orders", "namespace": ns, "annotations": map[string]any{"meta.helm.sh/release-name": "orders", "meta.helm.sh/release-namespace": ns}},
		"spec": map[string]any{"replicas": int64(1), "selector": map[string]any{"matchLabels": map[string]any{"app": "orders"}},
			"workloadRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "orders"}}}}
	create(t, c, ro)
	stable := tmpl("1.0.0@" + d1)
	stable.Labels = map[string]string{"app": "orders", "rollouts-pod-template-hash": "stable1"}
	create(t, c, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "orders-stable1", Namespace: ns, Labels: stable.Labels},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: stable.Labels}, Template: stable}})
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"abort": true, "phase": "Degraded", "observedGeneration": "1",
		"message": "RolloutAborted: Rollout aborted update to revision 2", "stableRS": "stable1", "currentPodHash": "new2"}})
	if err := c.Status().Patch(ctx, ro, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatal(err)
	}
	u, err := stage.Read(ctx, c, stage.Target{Kind: "HelmRelease", Namespace: ns, Name: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Workloads) != 1 || u.Workloads[0].Kind != "Rollout" {
		t.Fatalf("workloads: want the Rollout alone (its Deployment read through it): %+v", u.Workloads)
	}
	r := stage.Decide([]stage.Unit{u}, []promotion.Artifact{{Name: "app", Image: ordersImage}})
	if r.Rollback == nil || len(r.Rollback.Running) != 1 || r.Rollback.Running[0].Digest != d1 || r.Rollback.Pinned[0].Digest != d2 ||
		!strings.Contains(r.Rollback.Why, "Rollout "+ns+"/orders: RolloutAborted") {
		t.Errorf("the aborted Rollout: %+v", r.Rollback)
	}
}

// suspendedRelease is a HelmRelease "orders" that no controller acts on:
// a stage reads its workloads by the release annotations the test puts
// on objects itself.
func suspendedRelease(t *testing.T, c client.Client, ns string) {
	t.Helper()
	create(t, c, &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: ns},
		Spec: helmv2.HelmReleaseSpec{Suspend: true, Interval: metav1.Duration{Duration: time.Hour},
			Chart: &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{Chart: "orders", SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "none"}}}}})
}
