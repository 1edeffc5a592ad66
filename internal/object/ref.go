package object

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Ref identifies an object. Version is carried so the object can be read
// back, but is not part of its identity: apps/v1 and apps/v1beta2 name the
// same Deployment.
type Ref struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// RefOf returns obj's Ref.
func RefOf(obj *unstructured.Unstructured) Ref {
	gvk := obj.GroupVersionKind()
	return Ref{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// Key is a Ref without its version, for maps and sets.
type Key struct{ Group, Kind, Namespace, Name string }

// Key returns the version-free identity.
func (r Ref) Key() Key { return Key{r.Group, r.Kind, r.Namespace, r.Name} }

// GVK is the group, version and kind.
func (r Ref) GVK() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
}

// String reads like kubectl's resource names: "Deployment/shop/web",
// "ClusterRole/admin", with the group when there is one.
func (r Ref) String() string {
	kind := r.Kind
	if r.Group != "" {
		kind = r.Kind + "." + r.Group
	}
	if r.Namespace == "" {
		return fmt.Sprintf("%s/%s", kind, r.Name)
	}
	return fmt.Sprintf("%s/%s/%s", kind, r.Namespace, r.Name)
}
