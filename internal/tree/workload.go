package tree

import (
	"context"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/health"
)

// workloadKinds are the kinds Grow reads: those whose
// health says something about what runs (workloads, their Pods, Jobs,
// claims, autoscalers), and the owners of the tree's children. Any
// other kind would cost a watch of all its objects for no answer.
var workloadKinds = map[schema.GroupKind]string{
	{Group: "apps", Kind: "Deployment"}:                     "v1",
	{Group: "apps", Kind: "ReplicaSet"}:                     "v1",
	{Group: "apps", Kind: "StatefulSet"}:                    "v1",
	{Group: "apps", Kind: "DaemonSet"}:                      "v1",
	{Kind: "Pod"}:                                           "v1",
	{Group: "batch", Kind: "Job"}:                           "v1",
	{Group: "batch", Kind: "CronJob"}:                       "v1",
	{Kind: "PersistentVolumeClaim"}:                         "v1",
	{Group: "autoscaling", Kind: "HorizontalPodAutoscaler"}: "v2",
}

// childKinds are the kinds whose objects own others, and what they own.
var childKinds = map[string][]schema.GroupVersionKind{
	"Deployment":  {{Group: "apps", Version: "v1", Kind: "ReplicaSet"}},
	"ReplicaSet":  {{Version: "v1", Kind: "Pod"}},
	"StatefulSet": {{Version: "v1", Kind: "Pod"}},
	"DaemonSet":   {{Version: "v1", Kind: "Pod"}},
	"Job":         {{Version: "v1", Kind: "Pod"}},
	"CronJob":     {{Group: "batch", Version: "v1", Kind: "Job"}},
}

// WorkloadTransform keeps of a workload object only what its health and
// the tree read: identity, generation, owners, deletion, the annotations
// health rules read, the spec without its pod template or containers,
// and the status (of a Pod: phase, conditions and each container's
// state). BenchmarkWorkloadCachePod measures what that saves.
func WorkloadTransform(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	meta := map[string]any{}
	for _, k := range []string{"name", "namespace", "uid", "resourceVersion", "generation", "ownerReferences", "deletionTimestamp"} {
		if v, ok := u.Object["metadata"].(map[string]any)[k]; ok {
			meta[k] = v
		}
	}
	if a := healthAnnotations(u.GetAnnotations()); len(a) > 0 {
		meta["annotations"] = a
	}
	out := map[string]any{"apiVersion": u.GetAPIVersion(), "kind": u.GetKind(), "metadata": meta}
	pod := u.GetKind() == "Pod" && u.GetAPIVersion() == "v1"
	if spec, ok := u.Object["spec"].(map[string]any); ok {
		kept := map[string]any{}
		for k, v := range spec {
			switch {
			case pod && k != "restartPolicy":
			case k == "template" || k == "jobTemplate" || k == "volumeClaimTemplates" || k == "selector":
			default:
				kept[k] = v
			}
		}
		out["spec"] = kept
	}
	if st, ok := u.Object["status"].(map[string]any); ok {
		if pod {
			st = podStatus(st)
		}
		out["status"] = st
	}
	return &unstructured.Unstructured{Object: out}, nil
}

// healthAnnotations are the annotations health rules read: Argo CD's and
// Helm's hook and restart-policy ones, and an HPA v1's conditions.
func healthAnnotations(all map[string]string) map[string]any {
	kept := map[string]any{}
	for k, v := range all {
		for _, prefix := range []string{"argocd.argoproj.io/", "helm.sh/", "autoscaling.alpha.kubernetes.io/"} {
			if strings.HasPrefix(k, prefix) {
				kept[k] = v
			}
		}
	}
	return kept
}

// podStatus is a Pod's status as health reads it.
func podStatus(st map[string]any) map[string]any {
	kept := map[string]any{}
	for _, k := range []string{"phase", "reason", "message", "conditions"} {
		if v, ok := st[k]; ok {
			kept[k] = v
		}
	}
	for _, k := range []string{"containerStatuses", "initContainerStatuses"} {
		list, _ := st[k].([]any)
		var out []any
		for _, c := range list {
			cm, _ := c.(map[string]any)
			one := map[string]any{}
			for _, f := range []string{"name", "ready", "started", "restartCount", "state", "lastState"} {
				if v, ok := cm[f]; ok {
					one[f] = v
				}
			}
			out = append(out, one)
		}
		if out != nil {
			kept[k] = out
		}
	}
	return kept
}

// Wait bounds how long Grow waits for a reader's informers.
const Wait = 5 * time.Second

// workload reads a node's object; false when its kind is not a
// workload kind, or it is not there.
func workload(ctx context.Context, r client.Reader, gk schema.GroupKind, namespace, name string) (*unstructured.Unstructured, bool) {
	v, ok := workloadKinds[gk]
	if !ok {
		return nil, false
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gk.WithVersion(v))
	if err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, u); err != nil {
		return nil, false
	}
	return u, true
}

// Grow adds to each node what it owns (Deployment → ReplicaSet → Pod)
// and, where the unit's status does not say, the node's health, read
// from r: a workload cache (whose informers start on their first read,
// so Grow waits at most Wait for them: one that cannot sync must not
// hold the caller), or a client of the API server. Nodes r cannot read
// are left as they are.
func Grow(ctx context.Context, r client.Reader, nodes []*Node) {
	ctx, cancel := context.WithTimeout(ctx, Wait)
	defer cancel()
	var walk func(n *Node, depth int)
	walk = func(n *Node, depth int) {
		if depth > maxDepth {
			return
		}
		if obj, ok := workload(ctx, r, schema.GroupKind{Group: n.Group, Kind: n.Kind}, n.Namespace, n.Name); ok {
			if n.Health == "" {
				if res, ok := health.Assess(obj); ok {
					n.Health, n.Message = string(res.Status), res.Message
				}
			}
			n.Children = append(n.Children, owned(ctx, r, n, obj)...)
		}
		for _, c := range n.Children {
			walk(c, depth+1)
		}
	}
	for _, n := range nodes {
		walk(n, 0)
	}
}

// maxDepth bounds Grow: units nest (an app of apps), workloads own
// ReplicaSets that own Pods.
const maxDepth = 10

// owned are the objects of the kinds n's kind owns whose ownerReferences
// name obj, sorted by name.
func owned(ctx context.Context, r client.Reader, n *Node, obj *unstructured.Unstructured) []*Node {
	var out []*Node
	for _, gvk := range childKinds[n.Kind] {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := r.List(ctx, list, client.InNamespace(n.Namespace)); err != nil {
			continue
		}
		for _, o := range list.Items {
			if ownedBy(o.GetOwnerReferences(), obj.GetUID()) {
				out = append(out, &Node{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: o.GetNamespace(), Name: o.GetName()})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func ownedBy(refs []metav1.OwnerReference, uid types.UID) bool {
	for _, r := range refs {
		if r.UID == uid {
			return true
		}
	}
	return false
}
