// Package v1 holds the Go types of Flux's image.toolkit.fluxcd.io/v1
// ImageRepository, ImagePolicy and ImageUpdateAutomation, as far as
// converge supports them, so that existing manifests run unchanged.
// Unsupported fields are kept (the schema preserves unknown fields) and
// reported by name in a condition.
//
// +kubebuilder:object:generate=true
// +groupName=image.toolkit.fluxcd.io
package v1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

// GroupVersion is image.toolkit.fluxcd.io/v1.
var GroupVersion = schema.GroupVersion{Group: "image.toolkit.fluxcd.io", Version: "v1"}

// SchemeBuilder registers the types with a runtime.Scheme.
var SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

// AddToScheme adds the types to a scheme.
var AddToScheme = SchemeBuilder.AddToScheme

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	Name string `json:"name"`
}
