package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func init() { SchemeBuilder.Register(&HelmChart{}, &HelmChartList{}) }

// HelmChart resolves a chart version in a HelmRepository, for
// HelmReleases that name it with chartRef.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=hc
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Chart",type=string,JSONPath=`.spec.chart`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.spec.version`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
type HelmChart struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              HelmChartSpec   `json:"spec,omitempty"`
	Status            HelmChartStatus `json:"status,omitempty"`
}

// HelmChartSpec names the chart, a version range and its repository.
//
// +kubebuilder:pruning:PreserveUnknownFields
type HelmChartSpec struct {
	// Chart is a chart name in a HelmRepository, or a path in a
	// GitRepository.
	Chart string `json:"chart"`
	// Version is a semver range; empty is the latest. Charts from Git
	// have the version their Chart.yaml says.
	Version string `json:"version,omitempty"`
	// ReconcileStrategy is ChartVersion (the default) or Revision: a
	// chart from Git then gets a new revision with every commit.
	ReconcileStrategy string `json:"reconcileStrategy,omitempty"`
	// SourceRef names a HelmRepository or GitRepository in this
	// namespace.
	SourceRef LocalHelmChartSourceReference `json:"sourceRef"`
	Interval  metav1.Duration               `json:"interval"`
	Suspend   bool                          `json:"suspend,omitempty"`
}

// LocalHelmChartSourceReference names the chart's source.
type LocalHelmChartSourceReference struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
}

// HelmChartStatus is Flux's status shape; the artifact's revision is the
// resolved chart version.
type HelmChartStatus struct {
	ObservedGeneration int64              `json:"observedGeneration,omitempty"`
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
	Artifact           *Artifact          `json:"artifact,omitempty"`
}

// +kubebuilder:object:root=true

// HelmChartList is a list of HelmCharts.
type HelmChartList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []HelmChart `json:"items"`
}
