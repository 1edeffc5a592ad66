package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func init() { SchemeBuilder.Register(&ImagePolicy{}, &ImagePolicyList{}) }

// ImagePolicy picks the latest image among an ImageRepository's tags.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.status.latestRef.name`
// +kubebuilder:printcolumn:name="Tag",type=string,JSONPath=`.status.latestRef.tag`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type ImagePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ImagePolicySpec   `json:"spec,omitempty"`
	Status            ImagePolicyStatus `json:"status,omitempty"`
}

// Digest reflection policies: when the policy reads its pick's digest.
const (
	// ReflectAlways reads the digest on every reconcile, so a tag pushed
	// again (same name, new image) moves the digest.
	ReflectAlways = "Always"
	// ReflectIfNotPresent reads it when the pick changes.
	ReflectIfNotPresent = "IfNotPresent"
	// ReflectNever records no digest (the default).
	ReflectNever = "Never"
)

// ImagePolicySpec is how to pick.
//
// +kubebuilder:pruning:PreserveUnknownFields
type ImagePolicySpec struct {
	ImageRepositoryRef NamespacedObjectReference `json:"imageRepositoryRef"`
	Policy             ImagePolicyChoice         `json:"policy"`
	FilterTags         *TagFilter                `json:"filterTags,omitempty"`
	// DigestReflectionPolicy is Always, IfNotPresent or Never (empty).
	DigestReflectionPolicy string `json:"digestReflectionPolicy,omitempty"`
	// Interval re-reads the digest under Always; it must be set then.
	Interval *metav1.Duration `json:"interval,omitempty"`
	Suspend  bool             `json:"suspend,omitempty"`
}

// NamespacedObjectReference names an object, in the referrer's namespace
// if Namespace is empty.
type NamespacedObjectReference struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// ImagePolicyChoice holds exactly one policy.
type ImagePolicyChoice struct {
	SemVer       *SemVerPolicy       `json:"semver,omitempty"`
	Alphabetical *AlphabeticalPolicy `json:"alphabetical,omitempty"`
	Numerical    *NumericalPolicy    `json:"numerical,omitempty"`
}

// SemVerPolicy picks the highest version in Range.
type SemVerPolicy struct {
	Range string `json:"range"`
}

// AlphabeticalPolicy picks the greatest (asc) or least (desc) tag.
type AlphabeticalPolicy struct {
	Order string `json:"order,omitempty"`
}

// NumericalPolicy picks the greatest (asc) or least (desc) number.
type NumericalPolicy struct {
	Order string `json:"order,omitempty"`
}

// TagFilter keeps the tags Pattern matches, sorting what Extract makes
// of them.
type TagFilter struct {
	Pattern string `json:"pattern,omitempty"`
	Extract string `json:"extract,omitempty"`
}

// ImageRef is an image: name, tag and, if reflected, digest.
type ImageRef struct {
	Name   string `json:"name"`
	Tag    string `json:"tag"`
	Digest string `json:"digest,omitempty"`
}

// ImagePolicyStatus is Flux's status shape.
type ImagePolicyStatus struct {
	ObservedGeneration int64              `json:"observedGeneration,omitempty"`
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
	// LatestRef is the pick.
	LatestRef *ImageRef `json:"latestRef,omitempty"`
	// ObservedPreviousRef is the pick before LatestRef.
	ObservedPreviousRef    *ImageRef `json:"observedPreviousRef,omitempty"`
	LastHandledReconcileAt string    `json:"lastHandledReconcileAt,omitempty"`
}

// +kubebuilder:object:root=true

// ImagePolicyList is a list of ImagePolicies.
type ImagePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImagePolicy `json:"items"`
}
