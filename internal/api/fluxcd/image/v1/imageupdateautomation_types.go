package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func init() { SchemeBuilder.Register(&ImageUpdateAutomation{}, &ImageUpdateAutomationList{}) }

// ImageUpdateAutomation writes its namespace's ImagePolicies' picks into
// a Git repository, at the fields marked with setters, and pushes.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Last run",type=string,JSONPath=`.status.lastAutomationRunTime`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type ImageUpdateAutomation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ImageUpdateAutomationSpec   `json:"spec,omitempty"`
	Status            ImageUpdateAutomationStatus `json:"status,omitempty"`
}

// ImageUpdateAutomationSpec is where and how to write.
//
// +kubebuilder:pruning:PreserveUnknownFields
type ImageUpdateAutomationSpec struct {
	// SourceRef is the GitRepository to check out and push to.
	SourceRef CrossNamespaceSourceReference `json:"sourceRef"`
	GitSpec   *GitSpec                      `json:"git,omitempty"`
	Interval  metav1.Duration               `json:"interval"`
	// PolicySelector limits the policies used; empty is every policy in
	// the namespace.
	PolicySelector *metav1.LabelSelector `json:"policySelector,omitempty"`
	Update         *UpdateStrategy       `json:"update,omitempty"`
	Suspend        bool                  `json:"suspend,omitempty"`
}

// CrossNamespaceSourceReference names the GitRepository.
type CrossNamespaceSourceReference struct {
	APIVersion string `json:"apiVersion,omitempty"`
	// Kind is GitRepository (the default).
	Kind      string `json:"kind,omitempty"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// GitSpec is the checkout, the commit and the push.
type GitSpec struct {
	Checkout *GitCheckoutSpec `json:"checkout,omitempty"`
	Commit   CommitSpec       `json:"commit"`
	Push     *PushSpec        `json:"push,omitempty"`
}

// GitCheckoutSpec overrides the GitRepository's reference.
type GitCheckoutSpec struct {
	Reference GitRepositoryRef `json:"ref"`
}

// GitRepositoryRef is a branch (converge checks out branches only).
type GitRepositoryRef struct {
	Branch string `json:"branch,omitempty"`
}

// CommitSpec is the commit's author and message.
type CommitSpec struct {
	Author CommitUser `json:"author"`
	// MessageTemplate is a Go text/template with Sprig's functions; its
	// data are .AutomationObject, .Changed and .Values.
	MessageTemplate       string            `json:"messageTemplate,omitempty"`
	MessageTemplateValues map[string]string `json:"messageTemplateValues,omitempty"`
}

// CommitUser is a commit's author.
type CommitUser struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email"`
}

// PushSpec is where the commit goes: Branch (if empty, the checkout
// branch) and, besides, Refspec.
type PushSpec struct {
	Branch  string `json:"branch,omitempty"`
	Refspec string `json:"refspec,omitempty"`
}

// UpdateStrategy says which files to update: the YAML under Path (if
// empty, the repository's root), by Setters markers.
type UpdateStrategy struct {
	// Strategy is Setters, the default and only one.
	Strategy string `json:"strategy,omitempty"`
	Path     string `json:"path,omitempty"`
}

// ImageUpdateAutomationStatus is Flux's status shape.
type ImageUpdateAutomationStatus struct {
	ObservedGeneration    int64              `json:"observedGeneration,omitempty"`
	Conditions            []metav1.Condition `json:"conditions,omitempty"`
	LastAutomationRunTime *metav1.Time       `json:"lastAutomationRunTime,omitempty"`
	LastPushCommit        string             `json:"lastPushCommit,omitempty"`
	LastPushTime          *metav1.Time       `json:"lastPushTime,omitempty"`
	// ObservedPolicies are the picks of the last run, by policy name.
	ObservedPolicies map[string]ImageRef `json:"observedPolicies,omitempty"`
	// ObservedSourceRevision is the revision checked out last.
	ObservedSourceRevision string `json:"observedSourceRevision,omitempty"`
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
}

// +kubebuilder:object:root=true

// ImageUpdateAutomationList is a list of ImageUpdateAutomations.
type ImageUpdateAutomationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImageUpdateAutomation `json:"items"`
}
