package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DriftPolicy says which drift is expected for the units it selects and
// which is not (the seed's §8.1): expected drift is left alone, forbidden
// drift is reverted at once and alerted, the rest follows Default.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=dp,categories=converge
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Default",type=string,JSONPath=`.spec.default`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DriftPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              DriftPolicySpec   `json:"spec"`
	Status            DriftPolicyStatus `json:"status,omitempty"`
}

// DriftPolicySpec is the policy.
type DriftPolicySpec struct {
	// Selector picks, by label, the units in the policy's namespace
	// (Applications, Kustomizations, HelmReleases) it governs. Empty
	// selects every unit there.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// Allow is expected drift: left as it is live, never reverted, never
	// alerted.
	// +optional
	Allow []DriftRule `json:"allow,omitempty"`
	// Forbid is unauthorized drift: reverted at once and raising a
	// Warning event, even when the unit does not heal itself. It wins
	// over Allow.
	// +optional
	Forbid []DriftRule `json:"forbid,omitempty"`
	// Default is what happens to drift in neither list: report (shown,
	// taken back by the next sync), revert (taken back at once) or ignore
	// (left alone, not shown). Empty is report.
	// +kubebuilder:validation:Enum=report;revert;ignore
	// +optional
	Default string `json:"default,omitempty"`
	// Managers names field managers by category, beyond the built-in
	// lists.
	// +optional
	Managers DriftManagers `json:"managers,omitempty"`
	// Fight says when converge stops taking a field back from a manager
	// that keeps writing it (seed §17.5). Default: 5 times in 10m.
	// +optional
	Fight *DriftFight `json:"fight,omitempty"`
}

// DriftFight bounds how often converge takes one field back from the
// same manager before it calls it a fight, stops, and says so.
type DriftFight struct {
	// Reverts within Window make a fight. Default 5.
	// +kubebuilder:validation:Minimum=2
	// +optional
	Reverts int `json:"reverts,omitempty"`
	// Window is how far back reverts count. Default 10m.
	// +optional
	Window *metav1.Duration `json:"window,omitempty"`
}

// DriftRule matches drifted fields, or with Deletion an object's removal.
type DriftRule struct {
	// Kinds are "group/Kind" patterns (apps/Deployment, apps/*); a kind
	// without "/" matches in any group. Empty matches every kind.
	// +optional
	Kinds []string `json:"kinds,omitempty"`
	// Paths are JSON-pointer-like paths where "*" matches one segment
	// and a list item is named by its key (a container's name); a path
	// matches the fields under it. Empty matches every field.
	// +optional
	Paths []string `json:"paths,omitempty"`
	// Names are object name patterns. Empty matches every object.
	// +optional
	Names []string `json:"names,omitempty"`
	// Categories match the drift's category. Empty matches every one.
	// +optional
	Categories []DriftCategory `json:"categories,omitempty"`
	// When narrows the rule: HPATargets matches only objects a
	// HorizontalPodAutoscaler scales.
	// +kubebuilder:validation:Enum=HPATargets
	// +optional
	When string `json:"when,omitempty"`
	// Deletion makes the rule about the object being deleted.
	// +optional
	Deletion bool `json:"deletion,omitempty"`
}

// DriftCategory is one of the seed's drift types.
// +kubebuilder:validation:Enum=controller-managed;policy-mutation;cloud-provider;emergency-manual;unauthorized;unattributed
type DriftCategory string

// DriftManagers names field managers (glob patterns) by category.
type DriftManagers struct {
	// +optional
	Policy []string `json:"policy,omitempty"`
	// +optional
	Cloud []string `json:"cloud,omitempty"`
	// +optional
	Human []string `json:"human,omitempty"`
}

// DriftPolicyStatus says whether the policy is in force.
type DriftPolicyStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// DriftPolicyList is a list of DriftPolicies.
//
// +kubebuilder:object:root=true
type DriftPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DriftPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&DriftPolicy{}, &DriftPolicyList{})
}
