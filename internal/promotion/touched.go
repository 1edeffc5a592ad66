package promotion

import (
	"reflect"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// sensitiveKinds are the kinds whose change makes risk: auto high: they
// reach beyond the workload being promoted (seed §7.3, PROMOTION.md).
var sensitiveKinds = map[string]bool{
	"CustomResourceDefinition": true,
	"ClusterRole":              true, "ClusterRoleBinding": true, "Role": true, "RoleBinding": true,
	"Namespace": true,
}

// Touched compares a target's render on the base branch with its render
// at the pull request head. deletes are the objects the head no longer
// renders; sensitive are the CRDs, RBAC objects and Namespaces it adds,
// changes or removes. An object without a namespace is in namespace, on
// both sides alike. Both lists are sorted, each entry "Kind ns/name" (or
// "Kind name" for an object the render gives no namespace).
func Touched(before, after []*unstructured.Unstructured, namespace string) (deletes, sensitive []string) {
	type key struct{ group, kind, ns, name string }
	keyOf := func(o *unstructured.Unstructured) key {
		ns := o.GetNamespace()
		if ns == "" && !clusterScoped(o.GetKind()) {
			ns = namespace
		}
		return key{o.GroupVersionKind().Group, o.GetKind(), ns, o.GetName()}
	}
	name := func(k key) string {
		if k.ns == "" {
			return k.kind + " " + k.name
		}
		return k.kind + " " + k.ns + "/" + k.name
	}
	was := map[key]*unstructured.Unstructured{}
	for _, o := range before {
		was[keyOf(o)] = o
	}
	is := map[key]bool{}
	for _, o := range after {
		k := keyOf(o)
		is[k] = true
		if sensitiveKinds[k.kind] && (was[k] == nil || !reflect.DeepEqual(was[k].Object, o.Object)) {
			sensitive = append(sensitive, name(k))
		}
	}
	for k := range was {
		if is[k] {
			continue
		}
		deletes = append(deletes, name(k))
		if sensitiveKinds[k.kind] {
			sensitive = append(sensitive, name(k))
		}
	}
	sort.Strings(deletes)
	sort.Strings(sensitive)
	return deletes, sensitive
}

// clusterScoped are the built-in cluster-scoped kinds a render commonly
// holds; they get no default namespace.
func clusterScoped(kind string) bool {
	switch kind {
	case "Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "PriorityClass", "StorageClass",
		"IngressClass", "PersistentVolume", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService":
		return true
	}
	return false
}
