// Package health assesses the runtime health of Kubernetes objects: is what
// the API server holds really working? It is pure: it reads one object and
// returns a status with a message, with no client and no I/O.
//
// Statuses follow Argo CD's documented semantics so that dashboards and
// habits carry over: Healthy, Progressing (not yet healthy, may still get
// there), Degraded (failed, or will not get there without a change),
// Suspended (paused on purpose), Missing (not in the cluster) and Unknown
// (the assessment itself failed).
package health

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Status is a health status.
type Status string

// The statuses, worst last in the order Worst uses.
const (
	Healthy     Status = "Healthy"
	Suspended   Status = "Suspended"
	Progressing Status = "Progressing"
	Missing     Status = "Missing"
	Degraded    Status = "Degraded"
	Unknown     Status = "Unknown"
)

// Result is one object's health.
type Result struct {
	Status  Status `json:"status"`
	Message string `json:"message"`
}

// rule assesses one kind. An error means the object could not be read as
// its kind, and becomes Unknown.
type rule func(obj *unstructured.Unstructured) (Result, error)

// builtin maps group/kind to the rule that covers it. Versions are not part
// of the key: a rule reads fields that all served versions share.
var builtin = map[schema.GroupKind]rule{
	{Group: "apps", Kind: "Deployment"}:                               deployment,
	{Group: "apps", Kind: "StatefulSet"}:                              statefulSet,
	{Group: "apps", Kind: "DaemonSet"}:                                daemonSet,
	{Group: "apps", Kind: "ReplicaSet"}:                               replicaSet,
	{Group: "", Kind: "Pod"}:                                          pod,
	{Group: "", Kind: "PersistentVolumeClaim"}:                        pvc,
	{Group: "", Kind: "Service"}:                                      service,
	{Group: "", Kind: "Namespace"}:                                    namespace,
	{Group: "networking.k8s.io", Kind: "Ingress"}:                     ingress,
	{Group: "extensions", Kind: "Ingress"}:                            ingress,
	{Group: "batch", Kind: "Job"}:                                     job,
	{Group: "batch", Kind: "CronJob"}:                                 cronJob,
	{Group: "autoscaling", Kind: "HorizontalPodAutoscaler"}:           hpa,
	{Group: "apiregistration.k8s.io", Kind: "APIService"}:             apiService,
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}: crd,
}

// ownsDeletion lists the kinds whose rule words deletion itself.
var ownsDeletion = map[schema.GroupKind]bool{{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}: true}

// Assess is the engine's assessment: the kind's built-in rule, else the
// rule of its family of custom resources, else the generic rule. It returns false when neither has anything to
// say, and no health is invented.
func Assess(obj *unstructured.Unstructured) (Result, bool) {
	if r, ok := Core(obj); ok {
		return r, true
	}
	if r, ok := kind(obj); ok {
		return r, true
	}
	if r, ok := family(obj); ok {
		return r, true
	}
	return Generic(obj)
}

// Core applies the built-in rule for obj's kind, or returns false if its
// kind has none. An object being deleted is Progressing whatever its kind:
// it is on its way somewhere.
func Core(obj *unstructured.Unstructured) (Result, bool) {
	r, ok := builtin[obj.GroupVersionKind().GroupKind()]
	if !ok {
		return Result{}, false
	}
	if obj.GetDeletionTimestamp() != nil && !ownsDeletion[obj.GroupVersionKind().GroupKind()] {
		return Result{Status: Progressing, Message: "Pending deletion"}, true
	}
	res, err := r(obj)
	if err != nil {
		return Result{Status: Unknown, Message: err.Error()}, true
	}
	return res, true
}

// Worst returns the status that dominates when several objects are
// summarised, as an application's health is its worst resource's.
func Worst(a, b Status) Status {
	rank := map[Status]int{Healthy: 0, Suspended: 1, Progressing: 2, Missing: 3, Degraded: 4, Unknown: 5}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// typed converts obj into a typed API struct for the rules that read many
// fields; an object that does not fit its schema is reported as such.
func typed[T any](obj *unstructured.Unstructured) (*T, error) {
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, out); err != nil {
		return nil, fmt.Errorf("%s %s/%s does not match its schema: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
	}
	return out, nil
}
