package v2

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
)

// HelmRelease installs a chart from a repository and keeps the release
// as declared: upgrades, remediation by rollback, drift correction.
// Releases live in Helm's own storage, so `helm list` sees them.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=hr
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type HelmRelease struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              HelmReleaseSpec   `json:"spec,omitempty"`
	Status            HelmReleaseStatus `json:"status,omitempty"`
}

// HelmReleaseSpec is the release wanted.
//
// +kubebuilder:pruning:PreserveUnknownFields
type HelmReleaseSpec struct {
	// Chart names a chart in a HelmRepository; ChartRef names a
	// HelmChart instead. One of them is required.
	Chart    *HelmChartTemplate             `json:"chart,omitempty"`
	ChartRef *CrossNamespaceObjectReference `json:"chartRef,omitempty"`
	Interval metav1.Duration                `json:"interval"`
	// ReleaseName defaults to the HelmRelease's name (with the target
	// namespace as a prefix when one is set, as in Flux).
	ReleaseName     string `json:"releaseName,omitempty"`
	TargetNamespace string `json:"targetNamespace,omitempty"`
	// StorageNamespace holds Helm's release records; default the release
	// namespace.
	StorageNamespace string                `json:"storageNamespace,omitempty"`
	Timeout          *metav1.Duration      `json:"timeout,omitempty"`
	Values           *apiextensionsv1.JSON `json:"values,omitempty"`
	Install          *Install              `json:"install,omitempty"`
	Upgrade          *Upgrade              `json:"upgrade,omitempty"`
	DriftDetection   *DriftDetection       `json:"driftDetection,omitempty"`
	// ValuesFrom merges values from ConfigMaps and Secrets, in order,
	// before Values.
	ValuesFrom []ValuesReference `json:"valuesFrom,omitempty"`
	// Test runs the chart's tests (helm test) after an install or upgrade.
	Test *Test `json:"test,omitempty"`
	// DependsOn are HelmReleases that must be Ready first.
	DependsOn []DependencyReference `json:"dependsOn,omitempty"`
	Suspend   bool                  `json:"suspend,omitempty"`
	// ServiceAccountName is impersonated for every Helm action and
	// drift correction of the release, as Flux's multi-tenancy does.
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
}

// HelmChartTemplate names the chart.
type HelmChartTemplate struct {
	Spec HelmChartTemplateSpec `json:"spec"`
}

// HelmChartTemplateSpec is the chart, its version (a semver range) and
// its repository.
type HelmChartTemplateSpec struct {
	// Chart is a chart name in a HelmRepository, or a path in a
	// GitRepository.
	Chart     string                        `json:"chart"`
	Version   string                        `json:"version,omitempty"`
	SourceRef CrossNamespaceObjectReference `json:"sourceRef"`
	// ReconcileStrategy is ChartVersion (the default: a chart from Git
	// is upgraded when its version changes) or Revision (also when the
	// commit changes).
	ReconcileStrategy string `json:"reconcileStrategy,omitempty"`
	// Interval is how often the chart's source is checked for a new
	// version; the release's interval when unset.
	Interval *metav1.Duration `json:"interval,omitempty"`
}

// CrossNamespaceObjectReference names a source.
type CrossNamespaceObjectReference struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Namespace  string `json:"namespace,omitempty"`
}

// Install configures the first install.
type Install struct {
	Remediation *Remediation `json:"remediation,omitempty"`
	// CreateNamespace creates the release namespace if it is missing.
	CreateNamespace bool `json:"createNamespace,omitempty"`
	// CRDs is the policy for the chart's crds/ folder: Skip, Create (the
	// default) or CreateReplace.
	CRDs string `json:"crds,omitempty"`
	// Strategy is what to do when the install fails.
	Strategy *Strategy `json:"strategy,omitempty"`
}

// Upgrade configures upgrades.
type Upgrade struct {
	Remediation *Remediation `json:"remediation,omitempty"`
	// CRDs is the policy for the chart's crds/ folder: Skip (the
	// default, as Helm never upgrades CRDs), Create or CreateReplace.
	CRDs string `json:"crds,omitempty"`
	// Strategy is what to do when the upgrade fails.
	Strategy *Strategy `json:"strategy,omitempty"`
}

// Strategy is Flux's action strategy: RemediateOnFailure (the default:
// uninstall a failed install, roll back a failed upgrade, as the
// remediation says) or RetryOnFailure (leave the failed release and try
// again after RetryInterval, five minutes by default).
type Strategy struct {
	Name          string           `json:"name"`
	RetryInterval *metav1.Duration `json:"retryInterval,omitempty"`
}

// Remediation retries a failed action; for upgrades, remediation is a
// rollback to the last successful release.
type Remediation struct {
	// Retries is the number of retries; negative is unlimited.
	Retries int `json:"retries,omitempty"`
	// RemediateLastFailure remediates even when retries are exhausted.
	RemediateLastFailure *bool `json:"remediateLastFailure,omitempty"`
}

// DriftDetection compares the release's objects with the cluster.
type DriftDetection struct {
	// Mode is enabled (correct drift), warn (report it) or disabled.
	Mode string `json:"mode,omitempty"`
	// Ignore lists fields whose differences are not drift, and which a
	// correction leaves as they are.
	Ignore []IgnoreRule `json:"ignore,omitempty"`
}

// IgnoreRule ignores JSON pointer paths in the objects Target selects
// (all of the release's objects when Target is nil).
type IgnoreRule struct {
	Paths []string `json:"paths"`
	// Target is Flux's kustomize selector, shared with Kustomization
	// patches.
	Target *kustomizev1.Selector `json:"target,omitempty"`
}

// HelmReleaseStatus is Flux's status shape.
type HelmReleaseStatus struct {
	ObservedGeneration    int64              `json:"observedGeneration,omitempty"`
	Conditions            []metav1.Condition `json:"conditions,omitempty"`
	LastAttemptedRevision string             `json:"lastAttemptedRevision,omitempty"`
	// History holds the latest releases, newest first.
	History                []Snapshot `json:"history,omitempty"`
	InstallFailures        int64      `json:"installFailures,omitempty"`
	UpgradeFailures        int64      `json:"upgradeFailures,omitempty"`
	Failures               int64      `json:"failures,omitempty"`
	LastHandledReconcileAt string     `json:"lastHandledReconcileAt,omitempty"`
	// Inventory lists the objects of the current release and the
	// chart's CRDs, as Flux's helm-controller writes it (hooks are not
	// in it). It has the Kustomization's shape.
	Inventory *kustomizev1.ResourceInventory `json:"inventory,omitempty"`
}

// Snapshot is one release revision.
type Snapshot struct {
	Name         string `json:"name"`
	Namespace    string `json:"namespace"`
	Version      int    `json:"version"`
	Status       string `json:"status"`
	ChartName    string `json:"chartName"`
	ChartVersion string `json:"chartVersion"`
}

// +kubebuilder:object:root=true

// HelmReleaseList is a list of HelmReleases.
type HelmReleaseList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []HelmRelease `json:"items"`
}

// ValuesReference reads values from a ConfigMap or Secret key.
type ValuesReference struct {
	// Kind is ConfigMap or Secret.
	Kind string `json:"kind"`
	Name string `json:"name"`
	// ValuesKey is the data key; default values.yaml.
	ValuesKey string `json:"valuesKey,omitempty"`
	// TargetPath sets the key's value at this dotted path instead of
	// merging it as a YAML document.
	TargetPath string `json:"targetPath,omitempty"`
	Optional   bool   `json:"optional,omitempty"`
}

// DependencyReference names a HelmRelease, in this namespace if none is
// given.
type DependencyReference struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// Test configures helm test.
type Test struct {
	Enable bool `json:"enable,omitempty"`
	// IgnoreFailures keeps a release Ready when its tests fail.
	IgnoreFailures bool `json:"ignoreFailures,omitempty"`
}
