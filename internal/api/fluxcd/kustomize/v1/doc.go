// Package v1 holds the Go types of Flux's kustomize.toolkit.fluxcd.io/v1
// Kustomization, as far as converge supports it, so that existing
// manifests run unchanged. Unsupported fields are kept (the schema
// preserves unknown fields) and reported by name in a condition.
//
// +kubebuilder:object:generate=true
// +groupName=kustomize.toolkit.fluxcd.io
package v1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

// GroupVersion is kustomize.toolkit.fluxcd.io/v1.
var GroupVersion = schema.GroupVersion{Group: "kustomize.toolkit.fluxcd.io", Version: "v1"}

// SchemeBuilder registers the types with a runtime.Scheme.
var SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

// AddToScheme adds the types to a scheme.
var AddToScheme = SchemeBuilder.AddToScheme

func init() { SchemeBuilder.Register(&Kustomization{}, &KustomizationList{}) }
