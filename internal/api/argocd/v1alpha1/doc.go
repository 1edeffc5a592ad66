// Package v1alpha1 holds the Go types of Argo CD's argoproj.io/v1alpha1
// Application and AppProject, as far as converge supports them, so that
// existing manifests run unchanged. Fields converge does not support are
// kept (the schema preserves unknown fields) and reported by name as a
// condition, never silently ignored.
//
// +kubebuilder:object:generate=true
// +groupName=argoproj.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

// GroupVersion is argoproj.io/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: "argoproj.io", Version: "v1alpha1"}

// SchemeBuilder registers the types with a runtime.Scheme.
var SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

// AddToScheme adds the types to a scheme.
var AddToScheme = SchemeBuilder.AddToScheme
