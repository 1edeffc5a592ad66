package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ApplicationSet is a factory for Applications (the seed's §3.5): its
// generators produce parameter sets, and each set fills the template
// into one Application.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=appset;appsets,categories=argocd
// +kubebuilder:subresource:status
type ApplicationSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ApplicationSetSpec   `json:"spec"`
	Status            ApplicationSetStatus `json:"status,omitempty"`
}

// ApplicationSetSpec is Argo CD's; fields converge does not run are kept
// (unknown fields are preserved) and named in a condition.
//
// +kubebuilder:pruning:PreserveUnknownFields
type ApplicationSetSpec struct {
	Generators        []ApplicationSetGenerator `json:"generators"`
	Template          ApplicationSetTemplate    `json:"template"`
	GoTemplate        bool                      `json:"goTemplate,omitempty"`
	GoTemplateOptions []string                  `json:"goTemplateOptions,omitempty"`
	SyncPolicy        *ApplicationSetSyncPolicy `json:"syncPolicy,omitempty"`
	// Argo CD's fields converge does not run yet: a set that sets one is
	// refused by name (RollingSync would otherwise sync every
	// Application at once).
	Strategy                     *ApplicationSetStrategy `json:"strategy,omitempty"`
	TemplatePatch                *string                 `json:"templatePatch,omitempty"`
	IgnoreApplicationDifferences *apiextensionsv1.JSON   `json:"ignoreApplicationDifferences,omitempty"`
	PreservedFields              *apiextensionsv1.JSON   `json:"preservedFields,omitempty"`
	ApplyNestedSelectors         bool                    `json:"applyNestedSelectors,omitempty"`
}

// ApplicationSetGenerator is one generator. Only list and clusters run
// in converge so far; the others are kept as written and refused by name.
//
// +kubebuilder:pruning:PreserveUnknownFields
type ApplicationSetGenerator struct {
	List     *ListGenerator        `json:"list,omitempty"`
	Clusters *ClusterGenerator     `json:"clusters,omitempty"`
	Git      *apiextensionsv1.JSON `json:"git,omitempty"`
	Matrix   *apiextensionsv1.JSON `json:"matrix,omitempty"`
	Merge    *apiextensionsv1.JSON `json:"merge,omitempty"`
	// PullRequest and SCMProvider are Argo CD's pullRequest and
	// scmProvider generators.
	PullRequest             *apiextensionsv1.JSON `json:"pullRequest,omitempty"`
	SCMProvider             *apiextensionsv1.JSON `json:"scmProvider,omitempty"`
	ClusterDecisionResource *apiextensionsv1.JSON `json:"clusterDecisionResource,omitempty"`
	Plugin                  *apiextensionsv1.JSON `json:"plugin,omitempty"`
	Selector                *metav1.LabelSelector `json:"selector,omitempty"`
}

// ListGenerator yields its elements as parameter sets.
type ListGenerator struct {
	// Elements are JSON objects.
	Elements []apiextensionsv1.JSON `json:"elements,omitempty"`
	// ElementsYaml is a YAML list of more elements.
	ElementsYaml string `json:"elementsYaml,omitempty"`
	// Template overrides the ApplicationSet's template for these.
	Template *ApplicationSetTemplate `json:"template,omitempty"`
}

// ClusterGenerator yields one parameter set per registered cluster
// (cluster Secrets, and the cluster converge runs in) its selector
// matches.
type ClusterGenerator struct {
	Selector metav1.LabelSelector `json:"selector,omitempty"`
	// Values are added to each set as values.<key>.
	Values   map[string]string       `json:"values,omitempty"`
	Template *ApplicationSetTemplate `json:"template,omitempty"`
	// FlatList (one parameter set of all clusters) is refused by name.
	FlatList bool `json:"flatList,omitempty"`
}

// ApplicationSetTemplate is an Application with parameters in its
// strings.
type ApplicationSetTemplate struct {
	Metadata ApplicationSetTemplateMeta `json:"metadata"`
	// Spec is an Application spec, kept as JSON: its strings hold
	// parameters until rendered.
	// +kubebuilder:pruning:PreserveUnknownFields
	Spec apiextensionsv1.JSON `json:"spec"`
}

// ApplicationSetTemplateMeta is the generated Application's metadata.
type ApplicationSetTemplateMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Finalizers  []string          `json:"finalizers,omitempty"`
}

// ApplicationSetStrategy is how the set's Applications are synced:
// AllAtOnce (by their own policy) or RollingSync (step by step, the set
// triggering each sync).
type ApplicationSetStrategy struct {
	Type        string                         `json:"type,omitempty"`
	RollingSync *ApplicationSetRolloutStrategy `json:"rollingSync,omitempty"`
	// DeletionOrder other than AllAtOnce is refused by name.
	DeletionOrder string `json:"deletionOrder,omitempty"`
}

// ApplicationSetRolloutStrategy is RollingSync's steps, in order.
type ApplicationSetRolloutStrategy struct {
	Steps []ApplicationSetRolloutStep `json:"steps,omitempty"`
}

// ApplicationSetRolloutStep selects Applications by label; MaxUpdate
// bounds how many of them sync at once (a number or a percentage).
type ApplicationSetRolloutStep struct {
	MatchExpressions []ApplicationMatchExpression `json:"matchExpressions,omitempty"`
	MaxUpdate        *intstr.IntOrString          `json:"maxUpdate,omitempty"`
}

// ApplicationMatchExpression is In or NotIn over an Application label.
type ApplicationMatchExpression struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// ApplicationSetSyncPolicy says what the set may do to its Applications.
type ApplicationSetSyncPolicy struct {
	// PreserveResourcesOnDeletion keeps the Applications' objects when
	// the set is deleted (the Applications lose their finalizer).
	PreserveResourcesOnDeletion bool `json:"preserveResourcesOnDeletion,omitempty"`
	// ApplicationsSync is create-only, create-update, create-delete or
	// sync (the default: create, update and delete).
	// +kubebuilder:validation:Enum=create-only;create-update;create-delete;sync
	ApplicationsSync string `json:"applicationsSync,omitempty"`
}

// ApplicationSetStatus is Argo CD's shape.
type ApplicationSetStatus struct {
	Conditions []ApplicationSetCondition `json:"conditions,omitempty"`
	// Resources are the Applications the set generated.
	Resources []ApplicationSetResource `json:"resources,omitempty"`
	// ApplicationStatus is each Application's place in a RollingSync.
	ApplicationStatus []ApplicationSetApplicationStatus `json:"applicationStatus,omitempty"`
}

// ApplicationSetApplicationStatus is one Application in a RollingSync:
// Waiting, Pending (its sync was asked for), Progressing, Healthy, or
// (converge) Degraded.
type ApplicationSetApplicationStatus struct {
	Application        string       `json:"application"`
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
	Message            string       `json:"message"`
	Status             string       `json:"status"`
	Step               string       `json:"step"`
	// TargetRevisions are the commits the Application is rolled out to.
	TargetRevisions []string `json:"targetRevisions,omitempty"`
}

// ApplicationSetCondition is one condition, Argo CD's shape.
type ApplicationSetCondition struct {
	Type               string       `json:"type"`
	Status             string       `json:"status"`
	Reason             string       `json:"reason,omitempty"`
	Message            string       `json:"message"`
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
}

// ApplicationSetResource is one generated Application.
type ApplicationSetResource struct {
	Group     string        `json:"group,omitempty"`
	Version   string        `json:"version,omitempty"`
	Kind      string        `json:"kind,omitempty"`
	Namespace string        `json:"namespace,omitempty"`
	Name      string        `json:"name"`
	Status    string        `json:"status,omitempty"`
	Health    *HealthStatus `json:"health,omitempty"`
}

// ApplicationSetList is a list of ApplicationSets.
//
// +kubebuilder:object:root=true
type ApplicationSetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ApplicationSet `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ApplicationSet{}, &ApplicationSetList{})
}
