package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Promotion moves one freight (a set of image digests) into one stage of
// a Pipeline through a pull request. The controller writes one when a
// stage's source runs new digests; a person writes one for a manual
// promotion. Its spec never changes: a different freight is a different
// Promotion, and the older one is superseded.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=promo,categories=converge
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Pipeline",type=string,JSONPath=`.spec.pipeline`
// +kubebuilder:printcolumn:name="Stage",type=string,JSONPath=`.spec.stage`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="PR",type=string,JSONPath=`.status.pr.url`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`
type Promotion struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a Promotion's spec is immutable: promote a different freight with a new Promotion"
	Spec   PromotionSpec   `json:"spec"`
	Status PromotionStatus `json:"status,omitempty"`
}

// PromotionSpec is what is promoted where.
type PromotionSpec struct {
	// Pipeline names the Pipeline, in the Promotion's namespace.
	Pipeline string `json:"pipeline"`
	// Stage is the stage promoted to.
	Stage string `json:"stage"`
	// Reason is auto (the controller), manual or rollback.
	// +kubebuilder:validation:Enum=auto;manual;rollback
	Reason string `json:"reason"`
	// Freight is what is promoted.
	Freight Freight `json:"freight"`
	// Direct, for a rollback, pushes the change straight to the base
	// branch: the emergency path, allowed only by the stage's
	// allowDirectRollback.
	// +optional
	Direct bool `json:"direct,omitempty"`
}

// Freight is a set of artifacts promoted together, named by content.
type Freight struct {
	// ID is the sha256 of the artifacts' canonical JSON.
	ID string `json:"id"`
	// +kubebuilder:validation:MinItems=1
	Artifacts []FreightArtifact `json:"artifacts"`
}

// FreightArtifact is one image of a freight.
type FreightArtifact struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	// +optional
	Tag string `json:"tag,omitempty"`
	// +kubebuilder:validation:Pattern=`^sha256:[0-9a-f]{64}$`
	Digest string `json:"digest"`
}

// Promotion phases.
const (
	PhaseGating        = "Gating"
	PhaseAwaitingMerge = "AwaitingMerge"
	PhaseConverging    = "Converging"
	PhaseVerified      = "Verified"
	PhaseFailed        = "Failed"
	PhaseSuperseded    = "Superseded"
	PhaseAborted       = "Aborted"
)

// Terminal says whether phase is an end: Verified, Failed, Superseded or
// Aborted. Nothing more happens to such a promotion.
func Terminal(phase string) bool {
	switch phase {
	case PhaseVerified, PhaseFailed, PhaseSuperseded, PhaseAborted:
		return true
	}
	return false
}

// PromotionStatus is where the promotion is.
type PromotionStatus struct {
	// Phase is Gating, AwaitingMerge, Converging, Verified, Failed,
	// Superseded or Aborted.
	// +optional
	Phase string `json:"phase,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
	// Previous is what ran in the stage before.
	// +optional
	Previous []FreightArtifact `json:"previous,omitempty"`
	// Source is the stage promoted from, as observed.
	// +optional
	Source *PromotionSource `json:"source,omitempty"`
	// +optional
	PR *PromotionPR `json:"pr,omitempty"`
	// Risk is the risk the gates were chosen by, and why.
	// +optional
	Risk string `json:"risk,omitempty"`
	// +optional
	RiskReason string `json:"riskReason,omitempty"`
	// Gates are the last evaluation.
	// +optional
	Gates []GateStatus `json:"gates,omitempty"`
	// Rollback is the rollback contract on the gates' head: whether
	// going back is automatic, manual or impossible, by dimension.
	// +optional
	Rollback *RollbackContract `json:"rollback,omitempty"`
	// +optional
	MergedAt *metav1.Time `json:"mergedAt,omitempty"`
	// DirectCommit is the commit a direct rollback pushed to the base
	// branch (no pull request).
	// +optional
	DirectCommit string `json:"directCommit,omitempty"`
	// +optional
	VerifiedAt *metav1.Time `json:"verifiedAt,omitempty"`
}

// PromotionSource is the source stage when the promotion was written.
type PromotionSource struct {
	Stage string `json:"stage"`
	// +optional
	Revision string `json:"revision,omitempty"`
	// +optional
	HealthySince *metav1.Time `json:"healthySince,omitempty"`
	// +optional
	ObservedAt *metav1.Time `json:"observedAt,omitempty"`
}

// PromotionPR is the promotion's pull request.
type PromotionPR struct {
	Number int    `json:"number"`
	URL    string `json:"url"`
	Branch string `json:"branch"`
	// Base is the base branch's commit the change was written on.
	// +optional
	Base string `json:"base,omitempty"`
	// Head is the commit the gates evaluated.
	Head string `json:"head"`
	// +optional
	MergeCommit string `json:"mergeCommit,omitempty"`
}

// GateStatus is one gate's result.
type GateStatus struct {
	Name        string `json:"name"`
	Requirement string `json:"requirement"`
	Phase       string `json:"phase"`
	// +optional
	Message string `json:"message,omitempty"`
}

// PromotionList is a list of Promotions.
//
// +kubebuilder:object:root=true
type PromotionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Promotion `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Promotion{}, &PromotionList{})
}

// RollbackContract is seed §15's answer for a promotion.
type RollbackContract struct {
	// Mode is automatic, manual or impossible.
	Mode string `json:"mode"`
	// +optional
	Checks []RollbackCheck `json:"checks,omitempty"`
	// +optional
	RollForward string `json:"rollForward,omitempty"`
}

// RollbackCheck is one dimension: image, config, manifest, database,
// cloud or policy.
type RollbackCheck struct {
	Dimension string `json:"dimension"`
	// Mode is automatic, manual, impossible, or empty when it could not
	// be checked.
	// +optional
	Mode    string `json:"mode,omitempty"`
	Message string `json:"message"`
}
