package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func init() { SchemeBuilder.Register(&Receiver{}, &ReceiverList{}) }

// Receiver turns a verified webhook call into reconciles of the listed
// objects.
//
// +kubebuilder:object:root=true
// +kubebuilder:storageversion
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type Receiver struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ReceiverSpec   `json:"spec,omitempty"`
	Status            ReceiverStatus `json:"status,omitempty"`
}

// ReceiverSpec is Flux's Receiver.
//
// +kubebuilder:pruning:PreserveUnknownFields
type ReceiverSpec struct {
	// Type is generic, generic-hmac, github, gitlab, gitea, harbor or
	// cdevents.
	Type string `json:"type"`
	// Events limits which events trigger (by the sender's event header);
	// empty is all.
	Events []string `json:"events,omitempty"`
	// Resources are reconciled on a verified call: by kind, and by name
	// ("*" and other wildcards) or matchLabels, in Namespace (if empty,
	// the Receiver's).
	Resources []CrossNamespaceObjectReference `json:"resources"`
	// SecretRef names the Secret whose "token" key makes the path and
	// verifies calls.
	SecretRef LocalObjectReference `json:"secretRef"`
	Interval  *metav1.Duration     `json:"interval,omitempty"`
	Suspend   bool                 `json:"suspend,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	Name string `json:"name"`
}

// CrossNamespaceObjectReference selects objects.
type CrossNamespaceObjectReference struct {
	APIVersion  string            `json:"apiVersion,omitempty"`
	Kind        string            `json:"kind"`
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// ReceiverStatus is Flux's status shape.
type ReceiverStatus struct {
	ObservedGeneration int64              `json:"observedGeneration,omitempty"`
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
	// WebhookPath is /hook/<sha256(token+name+namespace)>.
	WebhookPath string `json:"webhookPath,omitempty"`
}

// +kubebuilder:object:root=true

// ReceiverList is a list of Receivers.
type ReceiverList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Receiver `json:"items"`
}
