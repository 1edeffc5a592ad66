package v1beta3

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func init() { SchemeBuilder.Register(&Alert{}, &AlertList{}) }

// Alert sends the events of some objects to a Provider.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.providerRef.name`
type Alert struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              AlertSpec `json:"spec,omitempty"`
	// Status is converge's addition (Flux's v1beta3 has none): whether
	// the Alert can be used, and if not, why.
	Status Status `json:"status,omitempty"`
}

// AlertSpec is Flux's Alert.
//
// +kubebuilder:pruning:PreserveUnknownFields
type AlertSpec struct {
	ProviderRef LocalObjectReference `json:"providerRef"`
	// EventSeverity is info (every event, the default) or error.
	EventSeverity string `json:"eventSeverity,omitempty"`
	// EventSources are the objects whose events are sent.
	EventSources []CrossNamespaceObjectReference `json:"eventSources"`
	// InclusionList and ExclusionList are regular expressions on the
	// event's message: one must match, none may.
	InclusionList []string `json:"inclusionList,omitempty"`
	ExclusionList []string `json:"exclusionList,omitempty"`
	// EventMetadata is added to every event's metadata (the event's own
	// keys win).
	EventMetadata map[string]string `json:"eventMetadata,omitempty"`
	// Summary is added as the "summary" metadata (deprecated by Flux in
	// favour of eventMetadata.summary).
	Summary string `json:"summary,omitempty"`
	Suspend bool   `json:"suspend,omitempty"`
}

// CrossNamespaceObjectReference selects event sources: by kind, and by
// name ("*" and other wildcards) or by matchLabels, in Namespace (if
// empty, the Alert's).
type CrossNamespaceObjectReference struct {
	APIVersion  string            `json:"apiVersion,omitempty"`
	Kind        string            `json:"kind"`
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// +kubebuilder:object:root=true

// AlertList is a list of Alerts.
type AlertList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Alert `json:"items"`
}
