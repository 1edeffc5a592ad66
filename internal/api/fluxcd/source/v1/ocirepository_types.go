package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func init() { SchemeBuilder.Register(&OCIRepository{}, &OCIRepositoryList{}) }

// OCIRepository fetches an artifact (manifests in a tar+gzip layer) from
// an OCI registry.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=ocirepo
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
type OCIRepository struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              OCIRepositorySpec   `json:"spec,omitempty"`
	Status            OCIRepositoryStatus `json:"status,omitempty"`
}

// OCIRepositorySpec is what to fetch.
//
// +kubebuilder:pruning:PreserveUnknownFields
type OCIRepositorySpec struct {
	// URL is oci://<registry>/<repository>.
	URL      string            `json:"url"`
	Ref      *OCIRepositoryRef `json:"ref,omitempty"`
	Interval metav1.Duration   `json:"interval"`
	// Insecure allows plain HTTP.
	Insecure bool `json:"insecure,omitempty"`
	// SecretRef names a Secret with username and password.
	SecretRef     *LocalObjectReference `json:"secretRef,omitempty"`
	LayerSelector *OCILayerSelector     `json:"layerSelector,omitempty"`
	Suspend       bool                  `json:"suspend,omitempty"`
}

// OCIRepositoryRef picks the artifact: digest, then semver, then tag.
type OCIRepositoryRef struct {
	Digest string `json:"digest,omitempty"`
	SemVer string `json:"semver,omitempty"`
	Tag    string `json:"tag,omitempty"`
}

// OCILayerSelector picks the content layer.
type OCILayerSelector struct {
	MediaType string `json:"mediaType,omitempty"`
	// Operation is extract (the default); copy is not supported.
	Operation string `json:"operation,omitempty"`
}

// OCIRepositoryStatus is Flux's status shape.
type OCIRepositoryStatus struct {
	ObservedGeneration int64              `json:"observedGeneration,omitempty"`
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
	URL                string             `json:"url,omitempty"`
	Artifact           *Artifact          `json:"artifact,omitempty"`
}

// +kubebuilder:object:root=true

// OCIRepositoryList is a list of OCIRepositories.
type OCIRepositoryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []OCIRepository `json:"items"`
}
