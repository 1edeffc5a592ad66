// Package trace answers, for one live object, the audit questions of a
// production change (the seed's §2.1): which unit applied it and from
// which source, which commit (author, time, message), which pull request
// and reviewers, which environment, and whether it is in sync and
// healthy, with its drift. For an object no unit applied it says so, and
// names its fields' managers.
package trace

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	"converge.dev/converge/internal/drift"
	"converge.dev/converge/internal/health"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
	"converge.dev/converge/internal/source/git"
	"converge.dev/converge/internal/units"
)

// Report is what trace found. Fields it could not learn are empty, and
// Notes say why.
type Report struct {
	Object object.Ref `json:"object"`
	// Via are the owners followed up from the object asked about (a Pod
	// → ReplicaSet → Deployment) to the one a unit applied.
	Via    []object.Ref `json:"via,omitempty"`
	Health string       `json:"health,omitempty"`
	// HealthMessage is the object's own health's reason.
	HealthMessage string `json:"healthMessage,omitempty"`
	// Unit is the unit that applied it; nil when none did.
	Unit *units.Summary `json:"unit,omitempty"`
	// Sync is the object's sync status as its unit reports it.
	Sync string `json:"sync,omitempty"`
	// Source is the repository (and path or chart) the unit applies;
	// Revision the commit (or chart version) it applied.
	Source   string      `json:"source,omitempty"`
	Revision string      `json:"revision,omitempty"`
	Commit   *git.Commit `json:"commit,omitempty"`
	// Promotion is the converge promotion that made the commit.
	Promotion *Promotion `json:"promotion,omitempty"`
	// PullRequest is the pull request that merged the commit.
	PullRequest *PullRequest `json:"pullRequest,omitempty"`
	// Environment is the unit's Pipeline stages, and its cluster.
	Environment []string `json:"environment,omitempty"`
	Cluster     string   `json:"cluster,omitempty"`
	// Drift are the unit's drift items about this object.
	Drift []convergev1.DriftItem `json:"drift,omitempty"`
	// Managers are who wrote which fields, from managedFields.
	Managers []Manager `json:"managers"`
	Notes    []string  `json:"notes,omitempty"`
}

// Promotion is the promotion behind a commit.
type Promotion struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Pipeline  string `json:"pipeline"`
	Stage     string `json:"stage"`
	Phase     string `json:"phase,omitempty"`
}

// PullRequest is a merged pull request and its reviews.
type PullRequest struct {
	Number    int      `json:"number"`
	URL       string   `json:"url"`
	Title     string   `json:"title,omitempty"`
	Author    string   `json:"author,omitempty"`
	Reviewers []Review `json:"reviewers,omitempty"`
}

// Review is one reviewer's last word on the pull request.
type Review struct {
	User  string `json:"user"`
	State string `json:"state"`
}

// Manager is a managedFields entry: who, how, when, and the fields.
type Manager struct {
	Manager     string    `json:"manager"`
	Operation   string    `json:"operation"`
	Subresource string    `json:"subresource,omitempty"`
	Time        time.Time `json:"time,omitzero"`
	Fields      []string  `json:"fields"`
}

// Options say how trace reads.
type Options struct {
	// Client reads the cluster. Required.
	Client client.Reader
	// Git fetches the revision to read its commit; nil leaves commits
	// out. GitAuth is for Argo CD sources (a GitRepository's own
	// secretRef is read from the cluster).
	Git     *git.Fetcher
	GitAuth git.Auth
	// Forge asks the source's forge (Gitea) for the pull request that
	// merged the commit and its reviews. A promotion's forge token is
	// its Pipeline's; ForgeToken is for other repositories ("" asks
	// anonymously).
	Forge      bool
	ForgeToken string
	// Trusted is the URL prefix GitAuth and ForgeToken may be sent to:
	// a unit's source URL is whatever its author wrote, and the
	// caller's credentials must not follow it to another host. If
	// empty, they are sent nowhere.
	Trusted string
}

// trusted says whether the caller's credentials may go to url.
func (o Options) trusted(url string) bool {
	p := o.Trusted
	if p == "" || !strings.HasPrefix(url, p) {
		return false
	}
	// "https://gitea.internal" must not trust "https://gitea.internal.evil".
	return strings.HasSuffix(p, "/") || len(url) == len(p) || url[len(p)] == '/'
}

// maxOwners bounds the walk up ownerReferences.
const maxOwners = 5

// Object traces the live object gvk namespace/name.
func Object(ctx context.Context, o Options, gvk schema.GroupVersionKind, namespace, name string) (Report, error) {
	obj, err := get(ctx, o.Client, gvk, namespace, name)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Object: object.RefOf(obj), Managers: []Manager{}}
	// The object a unit applied is the highest of the controller chain
	// that carries ownership (a ReplicaSet copies its Deployment's
	// annotations: the Deployment is the one applied).
	chain := []*unstructured.Unstructured{obj}
	for range maxOwners {
		up, ok := controllerOf(ctx, o.Client, chain[len(chain)-1])
		if !ok {
			break
		}
		chain = append(chain, up)
	}
	for i := len(chain) - 1; i > 0; i-- {
		if owned(chain[i]) {
			for _, v := range chain[:i] {
				rep.Via = append(rep.Via, object.RefOf(v))
			}
			obj = chain[i]
			rep.Object = object.RefOf(obj)
			break
		}
	}
	if r, ok := health.Assess(obj); ok {
		rep.Health, rep.HealthMessage = string(r.Status), r.Message
	}
	rep.Managers = managers(obj)
	if err := o.unit(ctx, obj, &rep); err != nil {
		return rep, err
	}
	if rep.Unit == nil {
		rep.Notes = append(rep.Notes, "no unit applied this object: it carries no converge, Argo CD, Flux or Helm ownership; its fields' managers follow")
		return rep, nil
	}
	o.commit(ctx, &rep)
	o.promotion(ctx, &rep)
	o.environment(ctx, &rep)
	return rep, nil
}

func get(ctx context.Context, c client.Reader, gvk schema.GroupVersionKind, namespace, name string) (*unstructured.Unstructured, error) {
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(gvk)
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, obj); err != nil {
		return nil, fmt.Errorf("%s %s: %w", gvk.Kind, strings.TrimPrefix(namespace+"/"+name, "/"), err)
	}
	return obj, nil
}

// controllerOf is obj's controlling owner, if it can be read.
func controllerOf(ctx context.Context, c client.Reader, obj *unstructured.Unstructured) (*unstructured.Unstructured, bool) {
	for _, ref := range obj.GetOwnerReferences() {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err != nil {
			return nil, false
		}
		up, err := get(ctx, c, gv.WithKind(ref.Kind), obj.GetNamespace(), ref.Name)
		return up, err == nil
	}
	return nil, false
}

// owned says whether obj carries a unit's ownership: converge's,
// Helm's, Argo CD's or Flux's.
func owned(obj *unstructured.Unstructured) bool {
	return owner(obj) != "" || helmRelease(obj) != "" || obj.GetAnnotations()["argocd.argoproj.io/tracking-id"] != "" ||
		obj.GetLabels()["kustomize.toolkit.fluxcd.io/name"] != ""
}

// owner is the converge unit id an object carries.
func owner(obj *unstructured.Unstructured) string {
	return obj.GetAnnotations()[plan.OwnerAnnotation]
}

// helmRelease is "namespace/name" of the Helm release an object is in.
func helmRelease(obj *unstructured.Unstructured) string {
	a := obj.GetAnnotations()
	if a["meta.helm.sh/release-name"] == "" {
		return ""
	}
	return a["meta.helm.sh/release-namespace"] + "/" + a["meta.helm.sh/release-name"]
}

// managers lists managedFields entries with their fields.
func managers(obj *unstructured.Unstructured) []Manager {
	out := []Manager{}
	entries, err := drift.Entries(obj)
	if err != nil {
		return out
	}
	for _, e := range entries {
		m := Manager{Manager: e.Manager, Operation: e.Operation, Subresource: e.Subresource, Fields: []string{}}
		if e.Time != nil {
			m.Time = e.Time.Time
		}
		e.Fields.Leaves().Iterate(func(p fieldpath.Path) { m.Fields = append(m.Fields, p.String()) })
		out = append(out, m)
	}
	return out
}

// unit finds the unit that applied obj: converge's owner annotation,
// else the Helm release a HelmRelease made, else Argo CD's tracking id
// or Flux's labels (objects the anchors applied before converge).
func (o Options) unit(ctx context.Context, obj *unstructured.Unstructured, rep *Report) error {
	kind, ns, name := "", "", ""
	a, l := obj.GetAnnotations(), obj.GetLabels()
	switch id := owner(obj); {
	case strings.HasPrefix(id, "argocd."):
		kind = "Application"
		ns, name, _ = strings.Cut(strings.TrimPrefix(id, "argocd."), ".")
	case strings.HasPrefix(id, "flux."):
		kind = "Kustomization"
		ns, name, _ = strings.Cut(strings.TrimPrefix(id, "flux."), ".")
	case helmRelease(obj) != "":
		hr, err := o.releaseOf(ctx, obj)
		if err != nil {
			return err
		}
		if hr != nil {
			kind, ns, name = "HelmRelease", hr.Namespace, hr.Name
		}
	case a["argocd.argoproj.io/tracking-id"] != "":
		app, _, _ := strings.Cut(a["argocd.argoproj.io/tracking-id"], ":")
		kind, ns, name = "Application", "argocd", app
		if n, a, ok := strings.Cut(app, "_"); ok {
			ns, name = n, a
		}
	case l["kustomize.toolkit.fluxcd.io/name"] != "":
		kind, ns, name = "Kustomization", l["kustomize.toolkit.fluxcd.io/namespace"], l["kustomize.toolkit.fluxcd.io/name"]
	}
	if kind == "" {
		return nil
	}
	t := units.TypeOf(kind)
	u := t.New()
	if err := o.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, u); err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("its owner %s %s/%s cannot be read: %v", kind, ns, name, err))
		return nil
	}
	sum := t.Summarize(u)
	rep.Unit, rep.Cluster = &sum, sum.Cluster
	var report *convergev1.DriftReport
	switch u := u.(type) {
	case *v1alpha1.Application:
		report = u.Status.Drift
		for _, r := range u.Status.Resources {
			if r.Kind == rep.Object.Kind && r.Group == rep.Object.Group && r.Namespace == rep.Object.Namespace && r.Name == rep.Object.Name {
				rep.Sync = r.Status
			}
		}
		if u.Spec.Source != nil {
			rep.Source = strings.TrimSpace(u.Spec.Source.RepoURL + " " + u.Spec.Source.Path)
		}
		rep.Revision = appliedRevision(u)
	case *kustomizev1.Kustomization:
		report = u.Status.Drift
		rep.Source = sum.Source
		if _, sha, ok := strings.Cut(u.Status.LastAppliedRevision, "@sha1:"); ok {
			rep.Revision = sha
		} else {
			rep.Revision = u.Status.LastAppliedRevision
		}
	case *helmv2.HelmRelease:
		rep.Source = sum.Source
		if h := u.Status.History; len(h) > 0 {
			rep.Revision = h[0].ChartName + "@" + h[0].ChartVersion
		}
	}
	if report != nil {
		for _, it := range report.Items {
			if it.Object == rep.Object.String() {
				rep.Drift = append(rep.Drift, it)
			}
		}
	}
	if rep.Sync == "" && rep.Unit.Dialect == units.Flux {
		// Flux units have no per-object status: the object is as applied
		// unless a drift item says otherwise.
		rep.Sync = "Synced"
		if len(rep.Drift) > 0 {
			rep.Sync = "OutOfSync"
		}
	}
	return nil
}

// appliedRevision is the commit an Application last deployed.
func appliedRevision(a *v1alpha1.Application) string {
	if h := a.Status.History; len(h) > 0 {
		return h[len(h)-1].Revision
	}
	if op := a.Status.OperationState; op != nil && op.SyncResult != nil && op.SyncResult.Revision != "" {
		return op.SyncResult.Revision
	}
	return a.Status.Sync.Revision
}

// releaseOf is the HelmRelease whose inventory holds obj, or whose
// release obj's Helm annotations name.
func (o Options) releaseOf(ctx context.Context, obj *unstructured.Unstructured) (*helmv2.HelmRelease, error) {
	list := &helmv2.HelmReleaseList{}
	if err := o.Client.List(ctx, list); err != nil {
		return nil, fmt.Errorf("HelmReleases: %w", err)
	}
	ref := object.RefOf(obj)
	id := fmt.Sprintf("%s_%s_%s_%s", ref.Namespace, ref.Name, ref.Group, ref.Kind)
	for i, hr := range list.Items {
		if inv := hr.Status.Inventory; inv != nil {
			for _, e := range inv.Entries {
				if e.ID == id {
					return &list.Items[i], nil
				}
			}
		}
	}
	want := helmRelease(obj)
	for i, hr := range list.Items {
		for _, h := range hr.Status.History {
			if h.Namespace+"/"+h.Name == want {
				return &list.Items[i], nil
			}
		}
	}
	return nil, nil
}
