// Package v2 holds the Go types of Flux's helm.toolkit.fluxcd.io/v2
// HelmRelease, as far as converge supports it, so that existing manifests
// run unchanged. Unsupported fields are kept (the schema preserves
// unknown fields) and reported by name in a condition.
//
// +kubebuilder:object:generate=true
// +groupName=helm.toolkit.fluxcd.io
package v2

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

// GroupVersion is helm.toolkit.fluxcd.io/v2.
var GroupVersion = schema.GroupVersion{Group: "helm.toolkit.fluxcd.io", Version: "v2"}

// SchemeBuilder registers the types with a runtime.Scheme.
var SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

// AddToScheme adds the types to a scheme.
var AddToScheme = SchemeBuilder.AddToScheme

func init() { SchemeBuilder.Register(&HelmRelease{}, &HelmReleaseList{}) }
