package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Pipeline promotes the same image digests from stage to stage (the
// seed's §2.3 and §7): each stage is one or more units of either dialect,
// and a promotion is a pull request that writes the digests running in
// the stage before into the stage's locator, gated by risk, merged, and
// verified live.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=pl,categories=converge
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Stages",type=integer,JSONPath=`.status.stageCount`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type Pipeline struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              PipelineSpec   `json:"spec"`
	Status            PipelineStatus `json:"status,omitempty"`
}

// PipelineSpec is the pipeline.
type PipelineSpec struct {
	// Repo is the deploy repository the stages' locators live in.
	Repo PipelineRepo `json:"repo"`
	// Artifacts are the images promoted together.
	// +kubebuilder:validation:MinItems=1
	Artifacts []PipelineArtifact `json:"artifacts"`
	// Stages in order; a stage with From is promoted from that stage.
	// +kubebuilder:validation:MinItems=1
	Stages []PipelineStage `json:"stages"`
	// Interval between observations of the stages. Default 30s.
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Grace is how long a stage may be unhealthy before its bake clock
	// resets. Default 2m.
	// +optional
	Grace *metav1.Duration `json:"grace,omitempty"`
	// VerifyTimeout is how long a merged promotion has to show its
	// digests live and Healthy. Default 10m.
	// +optional
	VerifyTimeout *metav1.Duration `json:"verifyTimeout,omitempty"`
	// Suspend stops new promotions; open ones are still followed.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// TestsContext is the commit status context CI sets on a pull
	// request's head ("ci/test"); the tests gate follows it: success
	// passes, failure or error fails, pending or absent waits. If empty,
	// the tests gate reads the digest's build evidence (result: passed).
	// +optional
	TestsContext string `json:"testsContext,omitempty"`
}

// PipelineRepo is the deploy repository and its forge.
type PipelineRepo struct {
	// URL is the repository's http(s) clone URL.
	URL string `json:"url"`
	// BaseBranch is the branch the stages reconcile. Default main.
	// +optional
	BaseBranch string `json:"baseBranch,omitempty"`
	// Forge is the forge's API dialect. Only gitea is built.
	// +kubebuilder:validation:Enum=gitea
	// +optional
	Forge string `json:"forge,omitempty"`
	// SecretRef names a Secret in the Pipeline's namespace with token
	// (the forge's API token, also the Git password) and optionally
	// username (default converge).
	SecretRef corev1.LocalObjectReference `json:"secretRef"`
}

// PipelineArtifact is one image the pipeline promotes.
type PipelineArtifact struct {
	// Name names it in status, evidence and trailers.
	Name string `json:"name"`
	// Image is the repository, without tag or digest, as the manifests
	// write it.
	Image string `json:"image"`
}

// PipelineStage is one environment.
type PipelineStage struct {
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// From is the stage whose running digests this one is promoted from.
	// A stage without From is moved by CI or image automation.
	// +optional
	From string `json:"from,omitempty"`
	// Targets are the units that deploy the stage, of either dialect.
	// All must run the same digests.
	// +kubebuilder:validation:MinItems=1
	Targets []StageTarget `json:"targets"`
	// Locator says where the stage's image reference is written.
	Locator StageLocator `json:"locator"`
	// Risk picks the gates (the seed's §7.3): low, high, or auto. Default
	// low.
	// +kubebuilder:validation:Enum=low;high;auto
	// +optional
	Risk string `json:"risk,omitempty"`
	// Bake is how long From must have run the digests healthy first.
	// +optional
	Bake *metav1.Duration `json:"bake,omitempty"`
	// AutoMerge merges when every required gate passes; otherwise a
	// person merges.
	// +optional
	AutoMerge bool `json:"autoMerge,omitempty"`
	// AllowDirectRollback permits the emergency path: a rollback pushed
	// straight to the base branch, without a pull request or gates
	// (`converge promote rollback --direct`). Off by default.
	// +optional
	AllowDirectRollback bool `json:"allowDirectRollback,omitempty"`
	// OnClusterRollback is what converge does when an Argo Rollout of
	// the stage is aborted or a Flagger Canary fails, so the cluster runs
	// its stable digests while Git pins the new ones. report (the
	// default) records it in status.stages[].rolledBack; propose also
	// opens the rollback pull request that makes Git pin what runs (the
	// Pipeline's consent to that write). Either way nothing is promoted
	// from the stage until Git and the cluster agree again.
	// +kubebuilder:validation:Enum=report;propose
	// +optional
	OnClusterRollback string `json:"onClusterRollback,omitempty"`
	// MergeStyle is merge, squash or rebase. Default merge.
	// +kubebuilder:validation:Enum=merge;squash;rebase
	// +optional
	MergeStyle string `json:"mergeStyle,omitempty"`
	// Approvals is how many people other than the author must approve
	// when the approval gate counts. Default 1.
	// +optional
	Approvals int `json:"approvals,omitempty"`
}

// StageTarget is a unit of either dialect.
type StageTarget struct {
	// +kubebuilder:validation:Enum=Application;Kustomization;HelmRelease
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// StageLocator is where a stage's image reference is written.
type StageLocator struct {
	// Path is the file, relative to the repository root.
	Path string `json:"path"`
	// +kubebuilder:validation:Enum=kustomize-images;yaml-path
	Kind string `json:"kind"`
	// Field is the scalar for yaml-path (".image.digest").
	// +optional
	Field string `json:"field,omitempty"`
	// Format of a yaml-path value: reference, digest or tag. If empty, it
	// follows the value there now.
	// +kubebuilder:validation:Enum=reference;digest;tag
	// +optional
	Format string `json:"format,omitempty"`
}

// PipelineStatus is what the controller observed.
type PipelineStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// StageCount is len(spec.stages), for kubectl get.
	// +optional
	StageCount int `json:"stageCount,omitempty"`
	// Stages hold each stage's live observation and bake clock.
	// +optional
	Stages []StageStatus `json:"stages,omitempty"`
}

// StageStatus is one stage's live observation: the bake clock,
// persisted so a restart continues it.
type StageStatus struct {
	Name string `json:"name"`
	// Digests running, by artifact name.
	// +optional
	Digests map[string]string `json:"digests,omitempty"`
	// Images running, as pinned references.
	// +optional
	Images []string `json:"images,omitempty"`
	// Revision the stage's units applied.
	// +optional
	Revision string `json:"revision,omitempty"`
	// +optional
	Healthy bool `json:"healthy,omitempty"`
	// Message says why the stage is not healthy or not pinned.
	// +optional
	Message string `json:"message,omitempty"`
	// HealthySince is when "these digests live and Healthy" began to
	// hold without a break.
	// +optional
	HealthySince *metav1.Time `json:"healthySince,omitempty"`
	// +optional
	UnhealthySince *metav1.Time `json:"unhealthySince,omitempty"`
	// +optional
	ObservedAt *metav1.Time `json:"observedAt,omitempty"`
	// Reset says why the bake clock last started again.
	// +optional
	Reset string `json:"reset,omitempty"`
	// Promotion is the stage's open promotion, if any.
	// +optional
	Promotion string `json:"promotion,omitempty"`
	// Verified is the last promotion verified live in the stage.
	// +optional
	Verified string `json:"verified,omitempty"`
	// Hold stops auto-promotion into the stage: set when a rollback is
	// verified, lifted by `converge promote release` or by a manual
	// promotion verified in the stage.
	// +optional
	Hold *StageHold `json:"hold,omitempty"`
	// RolledBack is set while the stage's cluster runs other digests
	// than Git pins because a progressive-delivery controller rolled the
	// update back.
	// +optional
	RolledBack *StageRollback `json:"rolledBack,omitempty"`
}

// StageRollback is a rollback done in the cluster, not in Git.
type StageRollback struct {
	// Since is when it was first observed.
	Since metav1.Time `json:"since"`
	// Message names the workloads and their controllers' account.
	Message string `json:"message"`
	// Pinned are the references Git pins; Running what runs instead,
	// empty when that is not one digest per artifact.
	// +optional
	Pinned []string `json:"pinned,omitempty"`
	// +optional
	Running []string `json:"running,omitempty"`
	// Promotion is the rollback promotion opened to make Git match
	// (onClusterRollback: propose).
	// +optional
	Promotion string `json:"promotion,omitempty"`
}

// StageHold is why a stage takes no automatic promotion.
type StageHold struct {
	Reason string      `json:"reason"`
	Since  metav1.Time `json:"since"`
	// Promotion is the rollback that set it.
	// +optional
	Promotion string `json:"promotion,omitempty"`
}

// PipelineList is a list of Pipelines.
//
// +kubebuilder:object:root=true
type PipelineList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Pipeline `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Pipeline{}, &PipelineList{})
}
