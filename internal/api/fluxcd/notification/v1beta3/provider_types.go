package v1beta3

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func init() { SchemeBuilder.Register(&Provider{}, &ProviderList{}) }

// Provider is where notifications go and how.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
type Provider struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ProviderSpec `json:"spec,omitempty"`
	// Status is converge's addition (Flux's v1beta3 has none): whether
	// the Provider can be used, and if not, why.
	Status Status `json:"status,omitempty"`
}

// ProviderSpec is Flux's Provider.
//
// +kubebuilder:pruning:PreserveUnknownFields
type ProviderSpec struct {
	// Type is generic, generic-hmac, gitea, github, gitlab, slack,
	// msteams or alertmanager.
	Type string `json:"type"`
	// Channel, Username: for slack.
	Channel  string `json:"channel,omitempty"`
	Username string `json:"username,omitempty"`
	// Address is the URL posted to; for commit statuses, the repository's
	// URL. The secretRef's "address" key wins over it.
	Address string `json:"address,omitempty"`
	// Timeout bounds one delivery. If empty, 15s.
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Proxy is an HTTP proxy's URL; the secretRef's "proxy" key wins.
	Proxy string `json:"proxy,omitempty"`
	// SecretRef names a Secret with "token", "address", "proxy",
	// "username"/"password" or "headers" (YAML map) keys.
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
	// CertSecretRef names a Secret whose "ca.crt" (or "caFile") is the
	// CA the address's certificate is checked against.
	CertSecretRef *LocalObjectReference `json:"certSecretRef,omitempty"`
	Suspend       bool                  `json:"suspend,omitempty"`
}

// +kubebuilder:object:root=true

// ProviderList is a list of Providers.
type ProviderList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Provider `json:"items"`
}
