package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
)

// Application is one unit of desired state: a source rendered into a
// destination, under a project's rules.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=app;apps,categories=argocd
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Sync Status",type=string,JSONPath=`.status.sync.status`
// +kubebuilder:printcolumn:name="Health Status",type=string,JSONPath=`.status.health.status`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.sync.revision`,priority=10
type Application struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ApplicationSpec   `json:"spec"`
	Status            ApplicationStatus `json:"status,omitempty"`
	// Operation is a requested sync; the controller clears it when done.
	Operation *Operation `json:"operation,omitempty"`
}

// ApplicationSpec is what the Application wants.
//
// +kubebuilder:pruning:PreserveUnknownFields
type ApplicationSpec struct {
	Source      *ApplicationSource     `json:"source,omitempty"`
	Destination ApplicationDestination `json:"destination"`
	// Project names the AppProject that governs this Application.
	Project    string      `json:"project"`
	SyncPolicy *SyncPolicy `json:"syncPolicy,omitempty"`
	// RevisionHistoryLimit bounds status.history. Default 10.
	RevisionHistoryLimit *int64 `json:"revisionHistoryLimit,omitempty"`
	// IgnoreDifferences lists differences that do not make the
	// Application OutOfSync.
	IgnoreDifferences []ResourceIgnoreDifferences `json:"ignoreDifferences,omitempty"`
}

// ResourceIgnoreDifferences is one ignoreDifferences rule.
type ResourceIgnoreDifferences struct {
	Group                 string   `json:"group,omitempty"`
	Kind                  string   `json:"kind"`
	Name                  string   `json:"name,omitempty"`
	Namespace             string   `json:"namespace,omitempty"`
	JSONPointers          []string `json:"jsonPointers,omitempty"`
	JQPathExpressions     []string `json:"jqPathExpressions,omitempty"`
	ManagedFieldsManagers []string `json:"managedFieldsManagers,omitempty"`
}

// ApplicationSource is where the desired state comes from.
//
// +kubebuilder:pruning:PreserveUnknownFields
type ApplicationSource struct {
	RepoURL        string                      `json:"repoURL"`
	Path           string                      `json:"path,omitempty"`
	TargetRevision string                      `json:"targetRevision,omitempty"`
	Helm           *ApplicationSourceHelm      `json:"helm,omitempty"`
	Directory      *ApplicationSourceDirectory `json:"directory,omitempty"`
}

// ApplicationSourceHelm configures a chart in the repository.
//
// +kubebuilder:pruning:PreserveUnknownFields
type ApplicationSourceHelm struct {
	ValueFiles  []string `json:"valueFiles,omitempty"`
	Values      string   `json:"values,omitempty"`
	ReleaseName string   `json:"releaseName,omitempty"`
}

// ApplicationSourceDirectory configures a plain folder of manifests.
//
// +kubebuilder:pruning:PreserveUnknownFields
type ApplicationSourceDirectory struct {
	Recurse bool                     `json:"recurse,omitempty"`
	Include string                   `json:"include,omitempty"`
	Exclude string                   `json:"exclude,omitempty"`
	Jsonnet ApplicationSourceJsonnet `json:"jsonnet,omitempty"`
}

// ApplicationSourceJsonnet holds the variables and library folders of a
// folder's Jsonnet files.
type ApplicationSourceJsonnet struct {
	ExtVars []JsonnetVar `json:"extVars,omitempty"`
	TLAs    []JsonnetVar `json:"tlas,omitempty"`
	Libs    []string     `json:"libs,omitempty"`
}

// JsonnetVar is a Jsonnet variable: a string, or code when Code is set.
type JsonnetVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Code  bool   `json:"code,omitempty"`
}

// ApplicationDestination is the cluster and namespace to deploy to.
type ApplicationDestination struct {
	Server    string `json:"server,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
}

// SyncPolicy says when and how to sync.
//
// +kubebuilder:pruning:PreserveUnknownFields
type SyncPolicy struct {
	Automated   *SyncPolicyAutomated `json:"automated,omitempty"`
	SyncOptions []string             `json:"syncOptions,omitempty"`
	Retry       *RetryStrategy       `json:"retry,omitempty"`
}

// SyncPolicyAutomated syncs whenever the revision or the live state moves.
type SyncPolicyAutomated struct {
	Prune      bool `json:"prune,omitempty"`
	SelfHeal   bool `json:"selfHeal,omitempty"`
	AllowEmpty bool `json:"allowEmpty,omitempty"`
}

// RetryStrategy retries a failed sync with backoff.
type RetryStrategy struct {
	Limit   int64    `json:"limit,omitempty"`
	Backoff *Backoff `json:"backoff,omitempty"`
}

// Backoff is a retry backoff.
type Backoff struct {
	Duration    string `json:"duration,omitempty"`
	Factor      *int64 `json:"factor,omitempty"`
	MaxDuration string `json:"maxDuration,omitempty"`
}

// Operation is a requested sync.
//
// +kubebuilder:pruning:PreserveUnknownFields
type Operation struct {
	Sync        *SyncOperation `json:"sync,omitempty"`
	InitiatedBy *InitiatedBy   `json:"initiatedBy,omitempty"`
}

// SyncOperation asks for a sync.
type SyncOperation struct {
	Revision    string   `json:"revision,omitempty"`
	Prune       bool     `json:"prune,omitempty"`
	DryRun      bool     `json:"dryRun,omitempty"`
	SyncOptions []string `json:"syncOptions,omitempty"`
}

// InitiatedBy records who asked.
type InitiatedBy struct {
	Username  string `json:"username,omitempty"`
	Automated bool   `json:"automated,omitempty"`
}

// ApplicationStatus is Argo CD's status shape.
type ApplicationStatus struct {
	Sync           SyncStatus             `json:"sync,omitempty"`
	Health         HealthStatus           `json:"health,omitempty"`
	Resources      []ResourceStatus       `json:"resources,omitempty"`
	Conditions     []ApplicationCondition `json:"conditions,omitempty"`
	OperationState *OperationState        `json:"operationState,omitempty"`
	History        []RevisionHistory      `json:"history,omitempty"`
	ReconciledAt   *metav1.Time           `json:"reconciledAt,omitempty"`
	Summary        *ApplicationSummary    `json:"summary,omitempty"`
	SourceType     string                 `json:"sourceType,omitempty"`
	// Drift explains each live field that differs from Git (converge's
	// own; Argo CD has none).
	Drift *convergev1.DriftReport `json:"drift,omitempty"`
}

// ApplicationSummary lists images, as Argo CD's UI shows them.
type ApplicationSummary struct {
	Images []string `json:"images,omitempty"`
}

// SyncStatus compares Git with the cluster.
type SyncStatus struct {
	// Status is Synced, OutOfSync or Unknown.
	Status     string     `json:"status"`
	Revision   string     `json:"revision,omitempty"`
	ComparedTo ComparedTo `json:"comparedTo,omitempty"`
}

// ComparedTo is what the sync status was computed against.
type ComparedTo struct {
	Source      ApplicationSource      `json:"source"`
	Destination ApplicationDestination `json:"destination"`
}

// HealthStatus is an application's or a resource's health.
type HealthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

// ResourceStatus is one managed object.
type ResourceStatus struct {
	Group     string        `json:"group,omitempty"`
	Version   string        `json:"version,omitempty"`
	Kind      string        `json:"kind,omitempty"`
	Namespace string        `json:"namespace,omitempty"`
	Name      string        `json:"name,omitempty"`
	Status    string        `json:"status,omitempty"`
	Health    *HealthStatus `json:"health,omitempty"`
	// RequiresPruning is true for an object Git no longer has.
	RequiresPruning bool `json:"requiresPruning,omitempty"`
}

// ApplicationCondition is a problem worth a human's attention.
type ApplicationCondition struct {
	Type               string       `json:"type"`
	Message            string       `json:"message"`
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
}

// OperationState is the state of the last or current sync.
type OperationState struct {
	Operation  Operation    `json:"operation"`
	Phase      string       `json:"phase"`
	Message    string       `json:"message,omitempty"`
	SyncResult *SyncResult  `json:"syncResult,omitempty"`
	StartedAt  metav1.Time  `json:"startedAt"`
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
	RetryCount int64        `json:"retryCount,omitempty"`
}

// SyncResult is what a sync did.
type SyncResult struct {
	Revision  string            `json:"revision"`
	Resources []ResourceResult  `json:"resources,omitempty"`
	Source    ApplicationSource `json:"source,omitempty"`
}

// ResourceResult is what a sync did to one object.
type ResourceResult struct {
	Group     string `json:"group"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Status    string `json:"status,omitempty"`
	Message   string `json:"message,omitempty"`
	SyncPhase string `json:"syncPhase,omitempty"`
	// HookType is the hook's phase annotation; empty for an ordinary object.
	HookType string `json:"hookType,omitempty"`
	// HookPhase is Running, Succeeded or Failed for a hook.
	HookPhase string `json:"hookPhase,omitempty"`
}

// RevisionHistory is one deployed revision.
type RevisionHistory struct {
	ID         int64             `json:"id"`
	Revision   string            `json:"revision,omitempty"`
	DeployedAt metav1.Time       `json:"deployedAt"`
	Source     ApplicationSource `json:"source,omitempty"`
}

// ApplicationList is a list of Applications.
//
// +kubebuilder:object:root=true
type ApplicationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Application `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Application{}, &ApplicationList{})
}
