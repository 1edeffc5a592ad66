package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func init() { SchemeBuilder.Register(&ImageRepository{}, &ImageRepositoryList{}) }

// ImageRepository scans an image repository's tags in a registry.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.image`
// +kubebuilder:printcolumn:name="Tags",type=integer,JSONPath=`.status.lastScanResult.tagCount`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type ImageRepository struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ImageRepositorySpec   `json:"spec,omitempty"`
	Status            ImageRepositoryStatus `json:"status,omitempty"`
}

// ImageRepositorySpec is what to scan.
//
// +kubebuilder:pruning:PreserveUnknownFields
type ImageRepositorySpec struct {
	// Image is the repository, without tag or digest
	// ("ghcr.io/org/app"; "app" is docker.io/library/app).
	Image string `json:"image"`
	// Interval is how often the tags are listed again.
	Interval metav1.Duration `json:"interval"`
	// Timeout bounds one scan. If empty, the interval, at most a minute.
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// SecretRef names a kubernetes.io/dockerconfigjson Secret holding the
	// registry's credentials.
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
	// Insecure allows plain HTTP.
	Insecure bool `json:"insecure,omitempty"`
	// ExclusionList holds regular expressions of tags to leave out. If
	// empty, "^.*\\.sig$" (cosign signatures), as in Flux.
	ExclusionList []string `json:"exclusionList,omitempty"`
	// Suspend stops scanning.
	Suspend bool `json:"suspend,omitempty"`
}

// ImageRepositoryStatus is Flux's status shape.
type ImageRepositoryStatus struct {
	ObservedGeneration int64              `json:"observedGeneration,omitempty"`
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
	// CanonicalImageName is the image with its registry made explicit.
	CanonicalImageName string `json:"canonicalImageName,omitempty"`
	// LastScanResult is what the last successful scan found.
	LastScanResult *ScanResult `json:"lastScanResult,omitempty"`
	// ObservedExclusionList is the exclusion list the scan used.
	ObservedExclusionList  []string `json:"observedExclusionList,omitempty"`
	LastHandledReconcileAt string   `json:"lastHandledReconcileAt,omitempty"`
}

// ScanResult sums up a scan.
type ScanResult struct {
	// Revision is a digest of the tags found, so a policy knows when they
	// changed.
	Revision string      `json:"revision,omitempty"`
	TagCount int         `json:"tagCount"`
	ScanTime metav1.Time `json:"scanTime,omitempty"`
	// LatestTags are up to ten tags, in reverse alphabetical order.
	LatestTags []string `json:"latestTags,omitempty"`
}

// +kubebuilder:object:root=true

// ImageRepositoryList is a list of ImageRepositories.
type ImageRepositoryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImageRepository `json:"items"`
}
