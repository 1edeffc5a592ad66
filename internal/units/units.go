// Package units is one view of the units of both dialects (Argo CD's
// Applications and ApplicationSets, Flux's Kustomizations, HelmReleases
// and sources): a summary row per object, and queries over many rows.
// It is pure: callers read the objects (from informer caches) and pass
// them in.
package units

import (
	"encoding/json"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	imagev1 "converge.dev/converge/internal/api/fluxcd/image/v1"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
)

// Dialects: Argo CD's, Flux's, and converge's own (promotion Pipelines).
const (
	ArgoCD   = "argocd"
	Flux     = "flux"
	Converge = "converge"
)

// Ref names a unit: its kind, namespace and name, never joined into one
// string that code would split (names may hold dots).
type Ref struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Kinds are the kinds a Ref may name, with their dialect and the
// resource name RBAC policies use.
var Kinds = map[string]struct{ Dialect, Resource string }{
	"Application":           {ArgoCD, "applications"},
	"ApplicationSet":        {ArgoCD, "applicationsets"},
	"Kustomization":         {Flux, "kustomizations"},
	"HelmRelease":           {Flux, "helmreleases"},
	"GitRepository":         {Flux, "gitrepositories"},
	"OCIRepository":         {Flux, "ocirepositories"},
	"HelmRepository":        {Flux, "helmrepositories"},
	"ImageRepository":       {Flux, "imagerepositories"},
	"ImagePolicy":           {Flux, "imagepolicies"},
	"ImageUpdateAutomation": {Flux, "imageupdateautomations"},
	"Pipeline":              {Converge, "pipelines"},
}

// Summary is one unit as a list shows it. Sync and Health use Argo CD's
// words for both dialects (Synced, OutOfSync, Unknown; Healthy,
// Progressing, Degraded, Suspended, Missing, Unknown), so one filter
// serves both.
type Summary struct {
	Ref
	Dialect string `json:"dialect"`
	// Project is the Argo CD project; "" for Flux.
	Project string `json:"project,omitempty"`
	// Cluster is where the unit deploys: the destination's name or
	// server, or the kubeConfig Secret; "in-cluster" for this one.
	Cluster string `json:"cluster,omitempty"`
	// Source is the repository (and path or chart); Revision what was
	// last applied or fetched.
	Source   string            `json:"source,omitempty"`
	Revision string            `json:"revision,omitempty"`
	Sync     string            `json:"sync"`
	Health   string            `json:"health"`
	Message  string            `json:"message,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Created  time.Time         `json:"created"`
	// Version is the object's resourceVersion: a stream client drops an
	// older update.
	Version string `json:"version"`
}

// InCluster is the cluster name of units that deploy where they are.
const InCluster = "in-cluster"

func base(kind string, m metav1.ObjectMeta) Summary {
	return Summary{Ref: Ref{Kind: kind, Namespace: m.Namespace, Name: m.Name}, Dialect: Kinds[kind].Dialect,
		Labels: m.Labels, Created: m.CreationTimestamp.Time, Version: m.ResourceVersion}
}

// FromApplication summarises an Argo CD Application.
func FromApplication(a *v1alpha1.Application) Summary {
	s := base("Application", a.ObjectMeta)
	s.Project = a.Spec.Project
	if s.Project == "" {
		s.Project = "default"
	}
	d := a.Spec.Destination
	switch {
	case d.Name != "":
		s.Cluster = d.Name
	case d.Server == "" || d.Server == "https://kubernetes.default.svc":
		s.Cluster = InCluster
	default:
		s.Cluster = d.Server
	}
	if src := a.Spec.Source; src != nil {
		s.Source = join(src.RepoURL, src.Path)
	}
	s.Revision = a.Status.Sync.Revision
	s.Sync, s.Health = orUnknown(a.Status.Sync.Status), orUnknown(a.Status.Health.Status)
	s.Message = a.Status.Health.Message
	for _, c := range a.Status.Conditions {
		if strings.HasSuffix(c.Type, "Error") {
			s.Message = c.Message
			break
		}
	}
	if op := a.Status.OperationState; s.Message == "" && op != nil && (op.Phase == "Failed" || op.Phase == "Error") {
		s.Message = op.Message
	}
	return s
}

// FromApplicationSet summarises an ApplicationSet: Synced when its
// Applications are up to date, Degraded on an error or a halt.
func FromApplicationSet(set *v1alpha1.ApplicationSet) Summary {
	s := base("ApplicationSet", set.ObjectMeta)
	s.Sync, s.Health = "Unknown", "Unknown"
	// The template's project, as Argo CD's RBAC reads it ("{{...}}" when
	// templated: only a policy for every project matches then).
	var spec struct{ Project string }
	_ = json.Unmarshal(set.Spec.Template.Spec.Raw, &spec)
	s.Project = spec.Project
	for _, c := range set.Status.Conditions {
		switch {
		case c.Type == "ResourcesUpToDate" && c.Status == "True":
			s.Sync, s.Health = "Synced", "Healthy"
		case c.Type == "ResourcesUpToDate":
			s.Sync = "OutOfSync"
		}
	}
	for _, c := range set.Status.Conditions {
		if (c.Type == "ErrorOccurred" || c.Type == "RolloutHalted" || c.Type == "DeletionHeld") && c.Status == "True" {
			s.Health, s.Message = "Degraded", c.Message
		}
	}
	if s.Health != "Degraded" {
		for _, c := range set.Status.Conditions {
			if c.Type == "RolloutProgressing" && c.Status == "True" {
				s.Health = "Progressing"
			}
		}
	}
	return s
}

// FromKustomization summarises a Flux Kustomization.
func FromKustomization(k *kustomizev1.Kustomization) Summary {
	s := base("Kustomization", k.ObjectMeta)
	s.Cluster = InCluster
	if kc := k.Spec.KubeConfig; kc != nil {
		s.Cluster = "kubeconfig:" + kc.SecretRef.Name
	}
	s.Source = join(sourceName(k.Spec.SourceRef.Kind, k.Spec.SourceRef.Namespace, k.Spec.SourceRef.Name, k.Namespace), k.Spec.Path)
	s.Revision = k.Status.LastAppliedRevision
	s.Sync, s.Health, s.Message = fluxState(k.Spec.Suspend, k.Generation, k.Status.ObservedGeneration, k.Status.Conditions)
	if s.Sync == "Synced" && k.Status.LastAttemptedRevision != "" && k.Status.LastAttemptedRevision != k.Status.LastAppliedRevision {
		s.Sync = "OutOfSync"
	}
	return s
}

// FromHelmRelease summarises a Flux HelmRelease.
func FromHelmRelease(h *helmv2.HelmRelease) Summary {
	s := base("HelmRelease", h.ObjectMeta)
	s.Cluster = InCluster
	if c := h.Spec.Chart; c != nil {
		ref := c.Spec.SourceRef
		s.Source = join(sourceName(ref.Kind, ref.Namespace, ref.Name, h.Namespace), c.Spec.Chart)
	} else if r := h.Spec.ChartRef; r != nil {
		s.Source = sourceName(r.Kind, r.Namespace, r.Name, h.Namespace)
	}
	if len(h.Status.History) > 0 {
		last := h.Status.History[0]
		s.Revision = last.ChartName + "@" + last.ChartVersion
	}
	s.Sync, s.Health, s.Message = fluxState(h.Spec.Suspend, h.Generation, h.Status.ObservedGeneration, h.Status.Conditions)
	return s
}

// FromGitRepository, FromOCIRepository and FromHelmRepository summarise
// Flux sources: Synced when their artifact is fetched.
func FromGitRepository(r *sourcev1.GitRepository) Summary {
	return source("GitRepository", r.ObjectMeta, r.Spec.URL, r.Spec.Suspend, r.Status.ObservedGeneration, r.Status.Conditions, r.Status.Artifact)
}

func FromOCIRepository(r *sourcev1.OCIRepository) Summary {
	return source("OCIRepository", r.ObjectMeta, r.Spec.URL, r.Spec.Suspend, r.Status.ObservedGeneration, r.Status.Conditions, r.Status.Artifact)
}

func FromHelmRepository(r *sourcev1.HelmRepository) Summary {
	return source("HelmRepository", r.ObjectMeta, r.Spec.URL, r.Spec.Suspend, r.Status.ObservedGeneration, r.Status.Conditions, r.Status.Artifact)
}

// FromImageRepository, FromImagePolicy and FromImageUpdateAutomation
// summarise Flux's image automation: the image scanned and its newest
// tag, the pick, the last commit pushed.
func FromImageRepository(r *imagev1.ImageRepository) Summary {
	s := base("ImageRepository", r.ObjectMeta)
	s.Source = r.Spec.Image
	if sc := r.Status.LastScanResult; sc != nil && len(sc.LatestTags) > 0 {
		s.Revision = sc.LatestTags[0]
	}
	s.Sync, s.Health, s.Message = fluxState(r.Spec.Suspend, r.Generation, r.Status.ObservedGeneration, r.Status.Conditions)
	return s
}

func FromImagePolicy(p *imagev1.ImagePolicy) Summary {
	s := base("ImagePolicy", p.ObjectMeta)
	s.Source = "ImageRepository/" + p.Spec.ImageRepositoryRef.Name
	if ref := p.Status.LatestRef; ref != nil {
		s.Source, s.Revision = ref.Name, ref.Tag
		if ref.Digest != "" {
			s.Revision += "@" + ref.Digest
		}
	}
	s.Sync, s.Health, s.Message = fluxState(p.Spec.Suspend, p.Generation, p.Status.ObservedGeneration, p.Status.Conditions)
	return s
}

func FromImageUpdateAutomation(a *imagev1.ImageUpdateAutomation) Summary {
	s := base("ImageUpdateAutomation", a.ObjectMeta)
	s.Source = "GitRepository/" + a.Spec.SourceRef.Name
	s.Revision = a.Status.LastPushCommit
	s.Sync, s.Health, s.Message = fluxState(a.Spec.Suspend, a.Generation, a.Status.ObservedGeneration, a.Status.Conditions)
	return s
}

func source(kind string, m metav1.ObjectMeta, url string, suspend bool, observed int64, conds []metav1.Condition, art *sourcev1.Artifact) Summary {
	s := base(kind, m)
	s.Source = url
	if art != nil {
		s.Revision = art.Revision
	}
	s.Sync, s.Health, s.Message = fluxState(suspend, m.Generation, observed, conds)
	return s
}

// fluxState maps Flux's Ready (and converge's Healthy) conditions onto
// sync and health: Ready True is Synced and Healthy; Ready False is
// OutOfSync and Degraded, unless it is still reconciling; a spec not yet
// observed is Progressing.
func fluxState(suspend bool, generation, observed int64, conds []metav1.Condition) (sync, health, msg string) {
	ready := meta.FindStatusCondition(conds, "Ready")
	switch {
	case ready == nil:
		sync, health = "Unknown", "Progressing"
	case ready.Status == metav1.ConditionTrue:
		sync, health, msg = "Synced", "Healthy", ready.Message
	case ready.Status == metav1.ConditionFalse && ready.Reason != "Progressing" && ready.Reason != "DependencyNotReady":
		sync, health, msg = "OutOfSync", "Degraded", ready.Message
	default:
		sync, health, msg = "OutOfSync", "Progressing", ready.Message
	}
	if h := meta.FindStatusCondition(conds, "Healthy"); h != nil && h.Status == metav1.ConditionFalse && health == "Healthy" {
		health, msg = "Degraded", h.Message
	}
	if generation > observed && ready != nil {
		health = "Progressing"
	}
	if suspend {
		health = "Suspended"
	}
	return sync, health, msg
}

func sourceName(kind, ns, name, def string) string {
	if ns == "" {
		ns = def
	}
	return kind + "/" + ns + "/" + name
}

func join(repo, path string) string {
	if path == "" || path == "." || path == "./" {
		return repo
	}
	return repo + " " + strings.TrimPrefix(path, "./")
}

func orUnknown(s string) string {
	if s == "" {
		return "Unknown"
	}
	return s
}

// FromPipeline summarises a promotion Pipeline: Synced when no stage
// waits on a promotion, Healthy when every stage is, Degraded when one
// was rolled back in its cluster.
func FromPipeline(p *convergev1.Pipeline) Summary {
	s := base("Pipeline", p.ObjectMeta)
	s.Sync, s.Health = "Synced", "Healthy"
	var stages []string
	for _, st := range p.Status.Stages {
		stages = append(stages, st.Name)
		if st.Promotion != "" {
			s.Sync, s.Message = "OutOfSync", "promotion "+st.Promotion+" into "+st.Name
		}
		if !st.Healthy && s.Health == "Healthy" {
			s.Health, s.Message = "Progressing", st.Name+": "+st.Message
		}
	}
	for _, st := range p.Status.Stages {
		if st.RolledBack != nil {
			s.Health, s.Message = "Degraded", st.Name+": rolled back in cluster: "+st.RolledBack.Message
		}
	}
	if len(p.Status.Stages) == 0 {
		s.Sync, s.Health = "Unknown", "Unknown"
	}
	s.Source = strings.Join(stages, " → ")
	return s
}
