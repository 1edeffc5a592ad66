package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AppProject sets the boundaries of the Applications in it: which
// repositories, which destinations, which kinds.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=appproj;appprojs,categories=argocd
type AppProject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              AppProjectSpec `json:"spec"`
}

// AppProjectSpec lists what the project allows.
//
// +kubebuilder:pruning:PreserveUnknownFields
type AppProjectSpec struct {
	SourceRepos                []string                 `json:"sourceRepos,omitempty"`
	Destinations               []ApplicationDestination `json:"destinations,omitempty"`
	Description                string                   `json:"description,omitempty"`
	ClusterResourceWhitelist   []metav1.GroupKind       `json:"clusterResourceWhitelist,omitempty"`
	ClusterResourceBlacklist   []metav1.GroupKind       `json:"clusterResourceBlacklist,omitempty"`
	NamespaceResourceWhitelist []metav1.GroupKind       `json:"namespaceResourceWhitelist,omitempty"`
	NamespaceResourceBlacklist []metav1.GroupKind       `json:"namespaceResourceBlacklist,omitempty"`
	SyncWindows                []SyncWindow             `json:"syncWindows,omitempty"`
	// Roles grant the project's own applications to groups, in the UI and
	// API; read only from projects in the control-plane namespace.
	Roles []ProjectRole `json:"roles,omitempty"`
}

// ProjectRole is an AppProject's role: subject "proj:<project>:<name>".
type ProjectRole struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Policies are "p, proj:<project>:<name>, applications, <action>,
	// <project>/<object>, allow|deny" lines.
	Policies []string `json:"policies,omitempty"`
	// Groups are the SSO groups that hold the role.
	Groups []string `json:"groups,omitempty"`
}

// SyncWindow is a time window in which syncs are allowed or denied, as
// Argo CD defines it.
type SyncWindow struct {
	// Kind is "allow" or "deny".
	Kind string `json:"kind,omitempty"`
	// Schedule is a cron expression: when the window opens.
	Schedule string `json:"schedule,omitempty"`
	// Duration is how long it stays open, as a Go duration ("1h").
	Duration string `json:"duration,omitempty"`
	// Applications, Namespaces and Clusters select what the window
	// covers, by glob; OR-ed unless AndOperator.
	Applications []string `json:"applications,omitempty"`
	Namespaces   []string `json:"namespaces,omitempty"`
	Clusters     []string `json:"clusters,omitempty"`
	// ManualSync lets manual syncs through the window.
	ManualSync bool `json:"manualSync,omitempty"`
	// TimeZone is the schedule's IANA time zone; empty is UTC.
	TimeZone    string `json:"timeZone,omitempty"`
	AndOperator bool   `json:"andOperator,omitempty"`
	Description string `json:"description,omitempty"`
}

// AppProjectList is a list of AppProjects.
//
// +kubebuilder:object:root=true
type AppProjectList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AppProject `json:"items"`
}

func init() {
	SchemeBuilder.Register(&AppProject{}, &AppProjectList{})
}
