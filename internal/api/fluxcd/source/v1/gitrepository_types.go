package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GitRepository fetches a Git repository at a reference, periodically,
// and publishes the revision it found as an artifact.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=gitrepo
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type GitRepository struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              GitRepositorySpec   `json:"spec,omitempty"`
	Status            GitRepositoryStatus `json:"status,omitempty"`
}

// GitRepositorySpec is what to fetch.
//
// +kubebuilder:pruning:PreserveUnknownFields
type GitRepositorySpec struct {
	// URL is the repository: https, ssh, or file:// for local use.
	URL string `json:"url"`
	// Ref picks the revision; the default branch if empty.
	Ref *GitRepositoryRef `json:"ref,omitempty"`
	// Interval is how often the reference is resolved again.
	Interval metav1.Duration `json:"interval"`
	// Timeout bounds one fetch. Default 60s.
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// SecretRef names a Secret with credentials: username/password or
	// bearerToken for https, identity/known_hosts for ssh.
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
	// Suspend stops reconciling.
	Suspend bool `json:"suspend,omitempty"`
	// Ignore holds gitignore-style patterns of files to leave out of
	// plain-manifest paths.
	Ignore *string `json:"ignore,omitempty"`
	// Include copies other GitRepositories' artifacts into this one's.
	Include []GitRepositoryInclude `json:"include,omitempty"`
}

// GitRepositoryInclude copies a folder of another GitRepository's
// artifact into this one's.
type GitRepositoryInclude struct {
	// Repository names a GitRepository in the same namespace.
	Repository LocalObjectReference `json:"repository"`
	// FromPath is the folder copied; empty is the whole repository.
	FromPath string `json:"fromPath,omitempty"`
	// ToPath is where it lands; empty is the included repository's name.
	ToPath string `json:"toPath,omitempty"`
}

// GitRepositoryRef is a Git reference; the most specific one set wins:
// commit, then name, then semver, then tag, then branch.
type GitRepositoryRef struct {
	Branch string `json:"branch,omitempty"`
	Tag    string `json:"tag,omitempty"`
	SemVer string `json:"semver,omitempty"`
	Name   string `json:"name,omitempty"`
	Commit string `json:"commit,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	Name string `json:"name"`
}

// GitRepositoryStatus is Flux's status shape.
type GitRepositoryStatus struct {
	ObservedGeneration int64              `json:"observedGeneration,omitempty"`
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
	// Artifact is the revision last fetched.
	Artifact *Artifact `json:"artifact,omitempty"`
	// IncludedArtifacts are the included repositories' artifacts, in
	// the order of spec.include, at the time Artifact was made.
	IncludedArtifacts []*Artifact `json:"includedArtifacts,omitempty"`
	// LastHandledReconcileAt is the reconcile.fluxcd.io/requestedAt
	// value last honoured.
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
}

// Artifact is a fetched revision.
type Artifact struct {
	// Path and URL locate the artifact; converge keeps revisions in its
	// own cache and fills them for tools that read them.
	Path string `json:"path"`
	URL  string `json:"url"`
	// Revision is "<ref>@sha1:<commit>", as Flux writes it.
	Revision       string      `json:"revision"`
	Digest         string      `json:"digest,omitempty"`
	LastUpdateTime metav1.Time `json:"lastUpdateTime"`
}

// +kubebuilder:object:root=true

// GitRepositoryList is a list of GitRepositories.
type GitRepositoryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []GitRepository `json:"items"`
}
