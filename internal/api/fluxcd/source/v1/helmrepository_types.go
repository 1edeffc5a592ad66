package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func init() { SchemeBuilder.Register(&HelmRepository{}, &HelmRepositoryList{}) }

// HelmRepository is a Helm chart repository: an HTTP(S) index, or an OCI
// registry.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=helmrepo
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
type HelmRepository struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              HelmRepositorySpec   `json:"spec,omitempty"`
	Status            HelmRepositoryStatus `json:"status,omitempty"`
}

// HelmRepositorySpec is where the charts are.
//
// +kubebuilder:pruning:PreserveUnknownFields
type HelmRepositorySpec struct {
	URL string `json:"url"`
	// Type is "default" (an HTTP index) or "oci".
	Type     string          `json:"type,omitempty"`
	Interval metav1.Duration `json:"interval,omitempty"`
	Suspend  bool            `json:"suspend,omitempty"`
	// SecretRef names a Secret with username and password for the
	// index and charts, or for the registry.
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
	// Insecure allows a plain HTTP registry (type oci only).
	Insecure bool `json:"insecure,omitempty"`
}

// HelmRepositoryStatus is Flux's status shape.
type HelmRepositoryStatus struct {
	ObservedGeneration int64              `json:"observedGeneration,omitempty"`
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
	// URL is where the index can be read.
	URL      string    `json:"url,omitempty"`
	Artifact *Artifact `json:"artifact,omitempty"`
}

// +kubebuilder:object:root=true

// HelmRepositoryList is a list of HelmRepositories.
type HelmRepositoryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []HelmRepository `json:"items"`
}
