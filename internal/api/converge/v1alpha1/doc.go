// Package v1alpha1 holds the Go types of converge's own kinds
// (converge.dev/v1alpha1): what neither Argo CD nor Flux has, starting
// with DriftPolicy.
//
// +kubebuilder:object:generate=true
// +groupName=converge.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

// GroupVersion is converge.dev/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: "converge.dev", Version: "v1alpha1"}

// SchemeBuilder registers the types with a runtime.Scheme.
var SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

// AddToScheme adds the types to a scheme.
var AddToScheme = SchemeBuilder.AddToScheme
