// Package flux translates Flux's GitRepository and Kustomization into
// engine units and writes Flux's status shape back: Ready, Reconciling
// and Stalled conditions with Flux's reasons, artifact,
// lastAppliedRevision, lastAttemptedRevision and inventory. It holds no
// I/O; the controller package runs it.
package flux

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/resid"

	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/dialect/specfields"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/redact"
	"converge.dev/converge/internal/render/kustomize"
)

// ReconcileRequestAnnotation asks a Flux object to reconcile now: its
// value (a time) is recorded in status.lastHandledReconcileAt once done.
const ReconcileRequestAnnotation = "reconcile.fluxcd.io/requestedAt"

// Flux's condition types and reasons, as its controllers write them.
const (
	ReadyCondition       = "Ready"
	ReconcilingCondition = "Reconciling"
	StalledCondition     = "Stalled"

	SucceededReason               = "Succeeded"
	ReconciliationSucceededReason = "ReconciliationSucceeded"
	ReconciliationFailedReason    = "ReconciliationFailed"
	ProgressingReason             = "Progressing"
	ArtifactFailedReason          = "ArtifactFailed"
	BuildFailedReason             = "BuildFailed"
	HealthCheckFailedReason       = "HealthCheckFailed"
	DependencyNotReadyReason      = "DependencyNotReady"
	GitOperationFailedReason      = "GitOperationFailed"
	InvalidSpecReason             = "InvalidSpec"
	// OwnershipConflictReason is converge's: objects belong to another
	// unit (another Kustomization, or an Argo CD Application).
	OwnershipConflictReason = "OwnershipConflict"
)

// UnitName is the unit id of a Kustomization, written on what it applies.
func UnitName(ks *kustomizev1.Kustomization) string {
	return "flux." + ks.Namespace + "." + ks.Name
}

// Revision turns a GitRepository ref into an engine revision; the most
// specific field wins, as in Flux: commit, name, semver, tag, branch.
func Revision(ref *sourcev1.GitRepositoryRef) string {
	switch {
	case ref == nil:
		return ""
	case ref.Commit != "":
		return ref.Commit
	case ref.Name != "":
		return ref.Name
	case ref.SemVer != "":
		return "semver:" + ref.SemVer
	case ref.Tag != "":
		return "tag:" + ref.Tag
	case ref.Branch != "":
		return "branch:" + ref.Branch
	}
	return ""
}

// ArtifactRevision is Flux's revision string: "<ref>@sha1:<commit>",
// or "sha1:<commit>" for a commit ref.
func ArtifactRevision(ref *sourcev1.GitRepositoryRef, commit string) string {
	name := "HEAD"
	if ref != nil {
		switch {
		case ref.Commit != "":
			return "sha1:" + commit
		case ref.Name != "":
			name = ref.Name
		case ref.Tag != "":
			name = ref.Tag
		case ref.SemVer != "":
			name = ref.SemVer
		case ref.Branch != "":
			name = ref.Branch
		}
	}
	return name + "@sha1:" + commit
}

// CommitOf extracts the commit from an artifact revision.
func CommitOf(revision string) string {
	if i := strings.LastIndex(revision, "sha1:"); i >= 0 {
		return revision[i+len("sha1:"):]
	}
	return revision
}

// Source is what a Kustomization's source published: where to fetch
// from and the exact revision (a commit, or an OCI digest).
type Source struct {
	URL      string
	Revision string
	// Artifact is the revision string Flux shows (main@sha1:...).
	Artifact string
	// Ignore holds the source's gitignore-style exclusions.
	Ignore []string
	// Includes are the folders of other repositories the source copies
	// into its own (GitRepository spec.include).
	Includes []engine.Include
}

// SourceOf reads a GitRepository's or OCIRepository's artifact.
func SourceOf(git *sourcev1.GitRepository, oci *sourcev1.OCIRepository) (Source, error) {
	switch {
	case git != nil && git.Status.Artifact != nil:
		var ignore []string
		if git.Spec.Ignore != nil {
			ignore = strings.Split(*git.Spec.Ignore, "\n")
		}
		return Source{URL: git.Spec.URL, Revision: CommitOf(git.Status.Artifact.Revision), Artifact: git.Status.Artifact.Revision, Ignore: ignore}, nil
	case oci != nil && oci.Status.Artifact != nil:
		return Source{URL: oci.Spec.URL, Revision: oci.Status.Artifact.Digest, Artifact: oci.Status.Artifact.Revision}, nil
	case git != nil:
		return Source{}, fmt.Errorf("source %s/%s has no artifact yet", git.Namespace, git.Name)
	case oci != nil:
		return Source{}, fmt.Errorf("source %s/%s has no artifact yet", oci.Namespace, oci.Name)
	}
	return Source{}, fmt.Errorf("no source")
}

// ToUnit translates a Kustomization and the artifact of its source; vars
// are the postBuild variables read from substituteFrom (nil without
// postBuild), ageKeys the decryption keys.
func ToUnit(ks *kustomizev1.Kustomization, src Source, vars map[string]string, ageKeys []string) (engine.Unit, engine.SyncOptions, error) {
	if k := ks.Spec.SourceRef.Kind; k != "GitRepository" && k != "OCIRepository" {
		return engine.Unit{}, engine.SyncOptions{}, fmt.Errorf("spec.sourceRef.kind: %q is not supported yet (GitRepository and OCIRepository are)", k)
	}
	ns := ks.Spec.TargetNamespace
	u := engine.Unit{
		Name:     UnitName(ks),
		RepoURL:  src.URL,
		Includes: src.Includes,
		// The exact revision of the artifact: what the source published
		// is what gets applied, even if the branch or tag moved since.
		Revision:      src.Revision,
		Path:          strings.TrimPrefix(strings.TrimPrefix(ks.Spec.Path, "./"), "/"),
		DestNamespace: ns,
	}
	u.Render.Recurse = true // Flux reads every manifest below the path
	u.Render.KustomizeSubfolders = true
	u.Render.Ignore = src.Ignore
	u.Render.SourceIgnore = true
	u.Render.Components = ks.Spec.Components
	if d := ks.Spec.Decryption; d != nil {
		if d.Provider != "sops" {
			return engine.Unit{}, engine.SyncOptions{}, fmt.Errorf("spec.decryption.provider: %q is not supported (sops is)", d.Provider)
		}
		u.Decryption = &engine.Decryption{AgeKeys: ageKeys}
	}
	sp := ks.Spec
	u.Overlay = kustomize.Overlay{NamePrefix: sp.NamePrefix, NameSuffix: sp.NameSuffix}
	if m := sp.CommonMetadata; m != nil {
		u.Overlay.Labels, u.Overlay.Annotations = m.Labels, m.Annotations
	}
	for _, im := range sp.Images {
		u.Overlay.Images = append(u.Overlay.Images, kustypes.Image{Name: im.Name, NewName: im.NewName, NewTag: im.NewTag, Digest: im.Digest})
	}
	for _, p := range sp.Patches {
		kp := kustypes.Patch{Patch: p.Patch}
		if t := p.Target; t != nil {
			kp.Target = &kustypes.Selector{ResId: resid.ResId{Gvk: resid.Gvk{Group: t.Group, Version: t.Version, Kind: t.Kind},
				Name: t.Name, Namespace: t.Namespace}, AnnotationSelector: t.AnnotationSelector, LabelSelector: t.LabelSelector}
		}
		u.Overlay.Patches = append(u.Overlay.Patches, kp)
	}
	if pb := ks.Spec.PostBuild; pb != nil {
		u.Substitute = map[string]string{}
		for k, v := range vars {
			u.Substitute[k] = v
		}
		for k, v := range pb.Substitute {
			u.Substitute[k] = v // inline variables win, as in Flux
		}
	}
	so := engine.SyncOptions{Prune: ks.Spec.Prune, Wait: ks.Spec.Wait, WaitThroughRetries: true}
	if err := engine.Guards(&so, ks.Annotations); err != nil {
		return engine.Unit{}, engine.SyncOptions{}, fmt.Errorf("metadata.annotations: %w", err)
	}
	return u, so, nil
}

// SetCondition sets one condition, as meta.SetStatusCondition does, with
// the object's generation.
func SetCondition(conds *[]metav1.Condition, gen int64, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(conds, metav1.Condition{Type: typ, Status: status, Reason: reason, Message: redact.Message(msg), ObservedGeneration: gen})
}

// MarkReady sets Ready=True and clears Reconciling and Stalled.
func MarkReady(conds *[]metav1.Condition, gen int64, reason, msg string) {
	SetCondition(conds, gen, ReadyCondition, metav1.ConditionTrue, reason, msg)
	meta.RemoveStatusCondition(conds, ReconcilingCondition)
	meta.RemoveStatusCondition(conds, StalledCondition)
}

// MarkFailed sets Ready=False; a stalled failure (bad spec) will not fix
// itself and says so, any other is retried.
func MarkFailed(conds *[]metav1.Condition, gen int64, reason, msg string, stalled bool) {
	SetCondition(conds, gen, ReadyCondition, metav1.ConditionFalse, reason, msg)
	if stalled {
		SetCondition(conds, gen, StalledCondition, metav1.ConditionTrue, reason, msg)
		meta.RemoveStatusCondition(conds, ReconcilingCondition)
		return
	}
	meta.RemoveStatusCondition(conds, StalledCondition)
	SetCondition(conds, gen, ReconcilingCondition, metav1.ConditionTrue, "ProgressingWithRetry", msg)
}

// Inventory is Flux's inventory of a sync: every object the unit owns.
func Inventory(rep engine.Report) *kustomizev1.ResourceInventory {
	var refs []object.Ref
	for _, s := range rep.Plan.Steps {
		switch s.Action {
		case "create", "update", "unchanged", "orphan":
			refs = append(refs, s.Ref)
		}
	}
	return RefInventory(refs)
}

// RefInventory is Flux's inventory of refs, sorted by ID.
func RefInventory(refs []object.Ref) *kustomizev1.ResourceInventory {
	inv := &kustomizev1.ResourceInventory{Entries: []kustomizev1.ResourceRef{}}
	for _, r := range refs {
		inv.Entries = append(inv.Entries, kustomizev1.ResourceRef{ID: inventoryID(r), Version: r.Version})
	}
	sort.Slice(inv.Entries, func(i, j int) bool { return inv.Entries[i].ID < inv.Entries[j].ID })
	return inv
}

func inventoryID(r object.Ref) string {
	return fmt.Sprintf("%s_%s_%s_%s", r.Namespace, r.Name, r.Group, r.Kind)
}

// Interval returns d, or def when d is zero.
func Interval(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil || d.Duration == 0 {
		return def
	}
	return d.Duration
}

// known lists the spec fields converge supports, per kind.
var known = map[string][]string{
	"GitRepository": {"url", "ref.branch", "ref.tag", "ref.semver", "ref.name", "ref.commit", "interval", "timeout", "secretRef.name", "suspend", "ignore",
		"include"},
	"HelmRelease": {"chart.spec.chart", "chart.spec.version", "chart.spec.sourceRef.kind", "chart.spec.sourceRef.name",
		"chart.spec.sourceRef.namespace", "chart.spec.sourceRef.apiVersion", "chart.spec.reconcileStrategy", "interval", "releaseName", "targetNamespace",
		"storageNamespace", "timeout", "values", "valuesFrom", "install.remediation.retries", "upgrade.remediation.retries",
		"upgrade.remediation.remediateLastFailure", "driftDetection.mode", "driftDetection.ignore", "dependsOn", "suspend",
		"chartRef.kind", "chartRef.name", "chartRef.namespace", "chartRef.apiVersion", "test.enable", "test.ignoreFailures", "serviceAccountName",
		"install.createNamespace", "install.crds", "upgrade.crds", "install.strategy.name", "install.strategy.retryInterval",
		"upgrade.strategy.name", "upgrade.strategy.retryInterval", "chart.spec.interval"},
	"HelmRepository": {"url", "type", "interval", "suspend", "secretRef.name", "insecure"},
	"HelmChart":      {"chart", "version", "sourceRef.kind", "sourceRef.name", "sourceRef.apiVersion", "interval", "suspend", "reconcileStrategy"},
	"OCIRepository":  {"url", "ref.tag", "ref.semver", "ref.digest", "interval", "insecure", "secretRef.name", "layerSelector.mediaType", "suspend"},
	"Kustomization": {"sourceRef.kind", "sourceRef.name", "sourceRef.namespace", "sourceRef.apiVersion", "path", "interval",
		"retryInterval", "timeout", "prune", "wait", "dependsOn", "targetNamespace", "suspend",
		"postBuild.substitute", "postBuild.substituteFrom", "deletionPolicy", "healthChecks", "namePrefix", "nameSuffix",
		"commonMetadata.labels", "commonMetadata.annotations", "images", "patches", "decryption.provider", "decryption.secretRef.name",
		"kubeConfig.secretRef.name", "kubeConfig.secretRef.key", "serviceAccountName", "components"},
	"ImageRepository": {"image", "interval", "timeout", "secretRef.name", "insecure", "exclusionList", "suspend"},
	"ImagePolicy": {"imageRepositoryRef.name", "imageRepositoryRef.namespace", "policy.semver.range", "policy.alphabetical.order",
		"policy.numerical.order", "filterTags.pattern", "filterTags.extract", "digestReflectionPolicy", "interval", "suspend"},
	"ImageUpdateAutomation": {"sourceRef.kind", "sourceRef.name", "sourceRef.namespace", "sourceRef.apiVersion", "git.checkout.ref.branch",
		"git.commit.author.name", "git.commit.author.email", "git.commit.messageTemplate", "git.commit.messageTemplateValues",
		"git.push.branch", "git.push.refspec", "interval", "policySelector", "update.path", "update.strategy", "suspend"},
	"Provider": {"type", "channel", "username", "address", "timeout", "proxy", "secretRef.name", "certSecretRef.name", "suspend", "interval"},
	"Alert": {"providerRef.name", "eventSeverity", "eventSources", "inclusionList", "exclusionList", "eventMetadata", "summary",
		"suspend"},
	"Receiver": {"type", "events", "resources[].apiVersion", "resources[].kind", "resources[].name", "resources[].namespace",
		"resources[].matchLabels", "secretRef.name", "interval", "suspend"},
}

// Supported lists the spec fields converge acts on for kind, as dotted
// paths from the object's root ("spec.interval"); a path covers every
// field below it.
func Supported(kind string) []string {
	out := make([]string, 0, len(known[kind]))
	for _, k := range known[kind] {
		out = append(out, "spec."+k)
	}
	return out
}

// Unsupported names every spec field converge does not act on, sorted;
// they are reported in a condition, never silently ignored.
func Unsupported(obj *unstructured.Unstructured) []string {
	spec, _, _ := unstructured.NestedMap(obj.Object, "spec")
	out := specfields.Unknown("spec", spec, Supported(obj.GetKind()))
	if force, ok, _ := unstructured.NestedBool(spec, "force"); ok && !force && obj.GetKind() == "Kustomization" {
		// Flux's force recreates objects whose immutable fields changed,
		// which converge does not do; false, Flux's default, asks for
		// nothing and is not worth a warning.
		out = slices.DeleteFunc(out, func(f string) bool { return f == "spec.force" })
	}
	return out
}

// MarkUnsupported sets the UnsupportedFields condition naming fields, or
// removes it when there are none.
func MarkUnsupported(conds *[]metav1.Condition, gen int64, fields []string) {
	if len(fields) == 0 {
		meta.RemoveStatusCondition(conds, "UnsupportedFields")
		return
	}
	SetCondition(conds, gen, "UnsupportedFields", metav1.ConditionTrue, "NotSupported",
		"fields not supported by converge, ignored: "+strings.Join(fields, ", "))
}

// ReadyOf is the Ready condition of an object decoded as a map (its
// type, status, reason and message), nil if it has none.
func ReadyOf(obj map[string]any) *metav1.Condition {
	conds, _, _ := unstructured.NestedSlice(obj, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] != ReadyCondition {
			continue
		}
		str := func(k string) string { s, _ := m[k].(string); return s }
		return &metav1.Condition{Type: ReadyCondition, Status: metav1.ConditionStatus(str("status")), Reason: str("reason"), Message: str("message")}
	}
	return nil
}

// Finalizer is Flux's finalizer: the Kustomization goes only after what
// it applied was handled by its deletion policy.
const Finalizer = "finalizers.fluxcd.io"

// DeletesOnDeletion reports whether deleting the Kustomization deletes
// what it applied.
func DeletesOnDeletion(ks *kustomizev1.Kustomization) bool {
	switch ks.Spec.DeletionPolicy {
	case "Delete", "WaitForTermination":
		return true
	case "Orphan":
		return false
	}
	return ks.Spec.Prune // MirrorPrune
}
