package v1

import (
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
)

// Kustomization builds a path of a source (a kustomization or plain
// manifests), applies it, prunes what it no longer holds and waits for
// readiness.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=ks
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type Kustomization struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              KustomizationSpec   `json:"spec,omitempty"`
	Status            KustomizationStatus `json:"status,omitempty"`
}

// KustomizationSpec is what to apply.
//
// +kubebuilder:pruning:PreserveUnknownFields
type KustomizationSpec struct {
	// SourceRef names the source (a GitRepository).
	SourceRef CrossNamespaceSourceReference `json:"sourceRef"`
	// Path is the folder in the source. Default the root.
	Path string `json:"path,omitempty"`
	// Interval is how often the path is applied again.
	Interval metav1.Duration `json:"interval"`
	// RetryInterval is the wait after a failure. Default Interval.
	RetryInterval *metav1.Duration `json:"retryInterval,omitempty"`
	// Timeout bounds apply and health waits. Default Interval.
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Prune deletes what the path no longer holds.
	Prune bool `json:"prune"`
	// Wait holds Ready until every applied object is healthy.
	Wait bool `json:"wait,omitempty"`
	// DependsOn are Kustomizations that must be Ready first.
	DependsOn []DependencyReference `json:"dependsOn,omitempty"`
	// TargetNamespace is set on every namespaced object.
	TargetNamespace string `json:"targetNamespace,omitempty"`
	// Suspend stops reconciling.
	Suspend bool `json:"suspend,omitempty"`
	// Force recreates objects whose immutable fields changed.
	Force bool `json:"force,omitempty"`
	// PostBuild substitutes variables in the built objects.
	PostBuild *PostBuild `json:"postBuild,omitempty"`
	// DeletionPolicy says what deleting the Kustomization does to what it
	// applied: MirrorPrune (the default: delete if prune is on), Delete,
	// WaitForTermination (delete and wait) or Orphan (keep).
	// +kubebuilder:validation:Enum=MirrorPrune;Delete;WaitForTermination;Orphan
	DeletionPolicy string `json:"deletionPolicy,omitempty"`
	// HealthChecks are objects to wait for, besides what it applied.
	HealthChecks []NamespacedObjectKindReference `json:"healthChecks,omitempty"`
	// NamePrefix and NameSuffix rename every object, and the references
	// to it, as kustomize does.
	NamePrefix string `json:"namePrefix,omitempty"`
	NameSuffix string `json:"nameSuffix,omitempty"`
	// CommonMetadata adds labels and annotations to every object.
	CommonMetadata *CommonMetadata `json:"commonMetadata,omitempty"`
	// Images overrides container images, as kustomize's images field.
	Images []Image `json:"images,omitempty"`
	// Patches are strategic-merge or JSON6902 patches, with targets.
	Patches []Patch `json:"patches,omitempty"`
	// Components are kustomize components, relative to Path.
	Components []string `json:"components,omitempty"`
	// Decryption opens SOPS-encrypted manifests.
	Decryption *Decryption `json:"decryption,omitempty"`
	// ServiceAccountName applies as this ServiceAccount of the
	// Kustomization's namespace (impersonation), so its RBAC bounds what
	// the Kustomization can change.
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// KubeConfig targets another cluster: the kubeconfig is read from a
	// Secret in the Kustomization's namespace.
	KubeConfig *KubeConfigReference `json:"kubeConfig,omitempty"`
}

// KubeConfigReference names the Secret holding a kubeconfig.
type KubeConfigReference struct {
	SecretRef SecretKeyReference `json:"secretRef"`
}

// SecretKeyReference names a Secret and a key in it; default keys are
// value, then value.yaml, as in Flux.
type SecretKeyReference struct {
	Name string `json:"name"`
	Key  string `json:"key,omitempty"`
}

// Decryption names the provider and the Secret holding the keys.
type Decryption struct {
	// Provider is sops.
	Provider string `json:"provider"`
	// SecretRef names a Secret whose keys ending in .agekey hold age
	// identities.
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	Name string `json:"name"`
}

// CommonMetadata is added to every object (never to selectors).
type CommonMetadata struct {
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Image overrides one image.
type Image struct {
	Name    string `json:"name"`
	NewName string `json:"newName,omitempty"`
	NewTag  string `json:"newTag,omitempty"`
	Digest  string `json:"digest,omitempty"`
}

// Patch is one patch and the objects it applies to.
type Patch struct {
	Patch  string    `json:"patch"`
	Target *Selector `json:"target,omitempty"`
}

// Selector picks objects, for a patch or a HelmRelease's drift ignore
// rule; empty fields match any.
type Selector struct {
	Group              string `json:"group,omitempty"`
	Version            string `json:"version,omitempty"`
	Kind               string `json:"kind,omitempty"`
	Name               string `json:"name,omitempty"`
	Namespace          string `json:"namespace,omitempty"`
	AnnotationSelector string `json:"annotationSelector,omitempty"`
	LabelSelector      string `json:"labelSelector,omitempty"`
}

// NamespacedObjectKindReference names an object to health-check.
type NamespacedObjectKindReference struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Namespace  string `json:"namespace,omitempty"`
}

// PostBuild holds variables for ${var} substitution.
type PostBuild struct {
	// Substitute holds variables; they win over SubstituteFrom.
	Substitute map[string]string `json:"substitute,omitempty"`
	// SubstituteFrom reads variables from ConfigMaps and Secrets in the
	// Kustomization's namespace, in order.
	SubstituteFrom []SubstituteReference `json:"substituteFrom,omitempty"`
}

// SubstituteReference names a ConfigMap or Secret of variables.
type SubstituteReference struct {
	// Kind is ConfigMap or Secret.
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Optional lets a missing object count as empty.
	Optional bool `json:"optional,omitempty"`
}

// CrossNamespaceSourceReference names a source.
type CrossNamespaceSourceReference struct {
	APIVersion string `json:"apiVersion,omitempty"`
	// Kind is GitRepository.
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// DependencyReference names a Kustomization, in this namespace if none
// is given.
type DependencyReference struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// KustomizationStatus is Flux's status shape.
type KustomizationStatus struct {
	ObservedGeneration    int64              `json:"observedGeneration,omitempty"`
	Conditions            []metav1.Condition `json:"conditions,omitempty"`
	LastAppliedRevision   string             `json:"lastAppliedRevision,omitempty"`
	LastAttemptedRevision string             `json:"lastAttemptedRevision,omitempty"`
	Inventory             *ResourceInventory `json:"inventory,omitempty"`
	// LastHandledReconcileAt is the reconcile.fluxcd.io/requestedAt
	// value last honoured.
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
	// Drift explains each live field that differs from Git (converge's
	// own; Flux only says drift was corrected).
	Drift *convergev1.DriftReport `json:"drift,omitempty"`
}

// ResourceInventory lists what was applied, as Flux writes it.
type ResourceInventory struct {
	Entries []ResourceRef `json:"entries"`
}

// ResourceRef is "<namespace>_<name>_<group>_<kind>" and the version.
type ResourceRef struct {
	ID      string `json:"id"`
	Version string `json:"v"`
}

// Parts reads the ID; ok is false for one not in Flux's form. Object
// names hold no '_', so the split is unambiguous.
func (r ResourceRef) Parts() (namespace, name, group, kind string, ok bool) {
	p := strings.Split(r.ID, "_")
	if len(p) != 4 {
		return "", "", "", "", false
	}
	return p[0], p[1], p[2], p[3], true
}

// +kubebuilder:object:root=true

// KustomizationList is a list of Kustomizations.
type KustomizationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Kustomization `json:"items"`
}
