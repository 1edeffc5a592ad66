package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DriftOverride is an emergency override (the seed's §3.2): for a while,
// some fields of some objects of one unit may differ from Git, and
// converge leaves them as they are live, even under selfHeal or a forbid
// rule. When it expires, converge reverts them or opens a backport pull
// request, as OnExpiry says, and records which it did in status.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=do,categories=converge
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Unit",type=string,JSONPath=`.spec.unit.name`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.spec.expires`
// +kubebuilder:printcolumn:name="By",type=string,JSONPath=`.spec.requestedBy`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
type DriftOverride struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              DriftOverrideSpec   `json:"spec"`
	Status            DriftOverrideStatus `json:"status,omitempty"`
}

// DriftOverrideSpec is the override.
type DriftOverrideSpec struct {
	// Unit is the Application or Kustomization, in the override's
	// namespace, whose fields it holds.
	Unit UnitReference `json:"unit"`
	// Rules match the fields held, as a DriftPolicy's rules do.
	// +kubebuilder:validation:MinItems=1
	Rules []DriftRule `json:"rules"`
	// Reason says why, for the unit's history and the backport.
	// +kubebuilder:validation:MinLength=1
	Reason string `json:"reason"`
	// Expires is when converge stops holding the fields.
	Expires metav1.Time `json:"expires"`
	// OnExpiry is what happens then: revert (Git's values are applied
	// again) or backport (a pull request writes the live values into
	// Git). Default revert.
	// +kubebuilder:validation:Enum=revert;backport
	// +optional
	OnExpiry string `json:"onExpiry,omitempty"`
	// RequestedBy is who asked for it: converge override fills it from
	// the API server's SelfSubjectReview, not from a client's claim.
	// +optional
	RequestedBy string `json:"requestedBy,omitempty"`
}

// UnitReference names a unit.
type UnitReference struct {
	// +kubebuilder:validation:Enum=Application;Kustomization
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// DriftOverrideStatus says whether the override holds and what was done
// at its expiry.
type DriftOverrideStatus struct {
	// Phase is Active, or Expired once the expiry action is done.
	// +optional
	Phase string `json:"phase,omitempty"`
	// Message says what was done at expiry ("reverted 1 field",
	// "backport pull request ...").
	// +optional
	Message string `json:"message,omitempty"`
}

// DriftOverrideList is a list of DriftOverrides.
//
// +kubebuilder:object:root=true
type DriftOverrideList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DriftOverride `json:"items"`
}

func init() {
	SchemeBuilder.Register(&DriftOverride{}, &DriftOverrideList{})
}
