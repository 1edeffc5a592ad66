package stage

import (
	"context"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The progressive-delivery kinds a stage reads. Both are read as
// unstructured objects: converge does not run their controllers, it
// reads the status those controllers document.
var (
	rolloutGVK = schema.GroupVersionKind{Group: "argoproj.io", Version: "v1alpha1", Kind: "Rollout"}
	canaryGVK  = schema.GroupVersionKind{Group: "flagger.app", Version: "v1beta1", Kind: "Canary"}
)

// rolloutHashLabel is the label Argo Rollouts puts on each ReplicaSet and
// pod, naming the pod template they belong to.
const rolloutHashLabel = "rollouts-pod-template-hash"

// readRollout reads an Argo Rollout. Its pod template is Git's; the pods
// counted are those of status.currentPodHash. An aborted Rollout
// (status.abort) went back to status.stableRS: those pods, and that
// ReplicaSet's template, are what runs instead.
func readRollout(ctx context.Context, c client.Reader, r workloadRef, driven map[string]bool) (Workload, error) {
	w := Workload{Kind: rolloutGVK.Kind, Namespace: r.namespace, Name: r.name}
	ro := &unstructured.Unstructured{}
	ro.SetGroupVersionKind(rolloutGVK)
	if err := c.Get(ctx, types.NamespacedName{Namespace: r.namespace, Name: r.name}, ro); err != nil {
		return w, fmt.Errorf("%s: %w", w, err)
	}
	var spec struct {
		Replicas    *int32                 `json:"replicas"`
		Selector    *metav1.LabelSelector  `json:"selector"`
		Template    corev1.PodTemplateSpec `json:"template"`
		WorkloadRef *struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"workloadRef"`
	}
	var status struct {
		Abort             bool   `json:"abort"`
		Phase             string `json:"phase"`
		Message           string `json:"message"`
		StableRS          string `json:"stableRS"`
		CurrentPodHash    string `json:"currentPodHash"`
		UpdatedReplicas   int32  `json:"updatedReplicas"`
		AvailableReplicas int32  `json:"availableReplicas"`
	}
	if err := fromField(ro, &spec, "spec"); err != nil {
		return w, fmt.Errorf("%s: spec: %w", w, err)
	}
	if err := fromField(ro, &status, "status"); err != nil {
		return w, fmt.Errorf("%s: status: %w", w, err)
	}
	observed := ""
	if v, ok, _ := unstructured.NestedFieldNoCopy(ro.Object, "status", "observedGeneration"); ok && v != nil {
		observed = fmt.Sprint(v)
	}
	tmpl, sel := spec.Template, spec.Selector
	if ref := spec.WorkloadRef; ref != nil {
		if ref.Kind != "Deployment" {
			w.Message = fmt.Sprintf("spec.workloadRef kind %q is not read: only a Deployment", ref.Kind)
			return w, nil
		}
		d := &appsv1.Deployment{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: r.namespace, Name: ref.Name}, d); err != nil {
			return w, fmt.Errorf("%s: spec.workloadRef: %w", w, err)
		}
		driven[r.namespace+"/"+ref.Name] = true
		tmpl = d.Spec.Template
		if sel == nil {
			sel = d.Spec.Selector
		}
	}
	want := int32(1)
	if spec.Replicas != nil {
		want = *spec.Replicas
	}
	// Current versions write the generation as a number, old ones a hash:
	// only a number behind the generation means "not seen yet".
	og, numeric := strconv.ParseInt(observed, 10, 64)
	switch {
	case status.Abort:
		msg := status.Message
		if msg == "" {
			msg = "the Rollout was aborted"
		}
		w.Rollback = &Rollback{Message: msg}
		w.Message = "aborted: " + msg
	case observed == "" || (numeric == nil && og < ro.GetGeneration()):
		w.Message = "the Argo Rollouts controller has not seen the latest spec"
	case status.Phase != "" && status.Phase != "Healthy":
		w.Message = "the Rollout is " + status.Phase
		if status.Message != "" {
			w.Message += ": " + status.Message
		}
	case status.CurrentPodHash == "" || status.CurrentPodHash != status.StableRS:
		w.Message = "the new pods are not the stable ones yet"
	case status.UpdatedReplicas < want || status.AvailableReplicas < want:
		w.Message = fmt.Sprintf("%d of %d replicas updated, %d available", status.UpdatedReplicas, want, status.AvailableReplicas)
	default:
		w.Complete = true
	}
	var current map[string]string
	if status.CurrentPodHash != "" {
		current = map[string]string{rolloutHashLabel: status.CurrentPodHash}
	}
	pods, err := podsOf(ctx, c, r.namespace, sel, current)
	if err != nil {
		return w, fmt.Errorf("%s: %w", w, err)
	}
	w.Containers = containersOf(tmpl, pods)
	if w.Rollback != nil && status.StableRS != "" {
		if w.Rollback.Containers, err = stableOf(ctx, c, r.namespace, sel, status.StableRS); err != nil {
			return w, fmt.Errorf("%s: stable ReplicaSet %s: %w", w, status.StableRS, err)
		}
	}
	return w, nil
}

// stableOf is the template of the Rollout's ReplicaSet with the stable
// hash, with its pods; nil when there is no such ReplicaSet.
func stableOf(ctx context.Context, c client.Reader, namespace string, sel *metav1.LabelSelector, hash string) ([]Container, error) {
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, err
	}
	list := &appsv1.ReplicaSetList{}
	if err := c.List(ctx, list, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return nil, err
	}
	for _, rs := range list.Items {
		if rs.Labels[rolloutHashLabel] != hash {
			continue
		}
		pods, err := podsOf(ctx, c, namespace, sel, map[string]string{rolloutHashLabel: hash})
		if err != nil {
			return nil, err
		}
		return containersOf(rs.Spec.Template, pods), nil
	}
	return nil, nil
}

// readCanary reads a Flagger Canary. Flagger copies the target
// Deployment (Git's) to <target>-primary once its analysis passes; the
// primary's pods are what serves. Failed means the analysis gave up and
// the primary kept the last promoted spec. A Canary without a phase has
// not been taken over by Flagger: its target is read as it is.
func readCanary(ctx context.Context, c client.Reader, r workloadRef, driven map[string]bool) (Workload, error) {
	w := Workload{Kind: canaryGVK.Kind, Namespace: r.namespace, Name: r.name}
	cn := &unstructured.Unstructured{}
	cn.SetGroupVersionKind(canaryGVK)
	if err := c.Get(ctx, types.NamespacedName{Namespace: r.namespace, Name: r.name}, cn); err != nil {
		return w, fmt.Errorf("%s: %w", w, err)
	}
	kind, _, _ := unstructured.NestedString(cn.Object, "spec", "targetRef", "kind")
	target, _, _ := unstructured.NestedString(cn.Object, "spec", "targetRef", "name")
	if kind != "Deployment" || target == "" {
		w.Message = fmt.Sprintf("spec.targetRef %s %q is not read: only a Deployment", kind, target)
		return w, nil
	}
	primary := target + "-primary"
	driven[r.namespace+"/"+target], driven[r.namespace+"/"+primary] = true, true
	phase, _, _ := unstructured.NestedString(cn.Object, "status", "phase")
	if phase == "" {
		return readWorkload(ctx, c, workloadRef{group: "apps", kind: "Deployment", namespace: r.namespace, name: target})
	}
	d, p := &appsv1.Deployment{}, &appsv1.Deployment{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: r.namespace, Name: target}, d); err != nil {
		return w, fmt.Errorf("%s: spec.targetRef: %w", w, err)
	}
	err := c.Get(ctx, types.NamespacedName{Namespace: r.namespace, Name: primary}, p)
	if apierrors.IsNotFound(err) {
		w.Message = fmt.Sprintf("the Canary is %s and Flagger has not made Deployment %s yet", phase, primary)
		w.Containers = containersOf(d.Spec.Template, nil)
		return w, nil
	}
	if err != nil {
		return w, fmt.Errorf("%s: Deployment %s: %w", w, primary, err)
	}
	pods, err := podsOf(ctx, c, r.namespace, p.Spec.Selector, nil)
	if err != nil {
		return w, fmt.Errorf("%s: Deployment %s: %w", w, primary, err)
	}
	w.Containers = containersOf(d.Spec.Template, pods)
	switch phase {
	case "Initialized", "Succeeded":
		w.Complete, w.Message = deploymentDone(p)
	case "Failed":
		msg := "Canary analysis failed"
		conds, _, _ := unstructured.NestedSlice(cn.Object, "status", "conditions")
		for _, cd := range conds {
			if m, ok := cd.(map[string]any); ok && m["type"] == "Promoted" && m["message"] != nil {
				msg = fmt.Sprint(m["message"])
			}
		}
		w.Rollback = &Rollback{Message: msg, Containers: containersOf(p.Spec.Template, pods)}
		w.Message = "failed: " + msg
	default:
		w.Message = "the Canary is " + phase + ": Flagger's analysis has not finished"
	}
	return w, nil
}

// fromField decodes the map at obj's field into out.
func fromField(obj *unstructured.Unstructured, out any, field string) error {
	m, ok, err := unstructured.NestedMap(obj.Object, field)
	if err != nil || !ok {
		return err
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructured(m, out)
}
