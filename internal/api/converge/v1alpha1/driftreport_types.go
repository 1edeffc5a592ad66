package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DriftReport is a unit's drift as its status shows it (an Argo CD
// Application's status.drift, a Flux Kustomization's status.drift): a
// one-line summary and a bounded list of the drifted fields.
type DriftReport struct {
	// Summary counts the drifted fields by category.
	Summary string `json:"summary"`
	// Total is how many fields drifted; Items holds at most the first 20.
	Total int `json:"total"`
	// Unexplained counts the fields no policy rule allows.
	Unexplained int `json:"unexplained"`
	// +optional
	Items []DriftItem `json:"items,omitempty"`
}

// DriftItem is one drifted field.
type DriftItem struct {
	// Object is Kind.group/namespace/name.
	Object string `json:"object"`
	// Path is the field in server-side apply notation; empty when the
	// whole object is gone.
	// +optional
	Path string `json:"path,omitempty"`
	// Desired and Live are JSON values, cut at 256 characters; a
	// Secret's data is masked.
	// +optional
	Desired string `json:"desired,omitempty"`
	// +optional
	Live string `json:"live,omitempty"`
	// Manager, Operation and Subresource name the managedFields entry
	// holding the field.
	// +optional
	Manager string `json:"manager,omitempty"`
	// +optional
	Operation string `json:"operation,omitempty"`
	// +optional
	Subresource string `json:"subresource,omitempty"`
	// Time is when that manager last wrote to the object.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
	// Category is controller-managed, policy-mutation, cloud-provider,
	// emergency-manual, unauthorized or unattributed.
	Category string `json:"category"`
	// Evidence is what the category rests on.
	Evidence string `json:"evidence"`
	// Action is revert, report, allow or override.
	Action string `json:"action"`
	// +optional
	Rule string `json:"rule,omitempty"`
}
