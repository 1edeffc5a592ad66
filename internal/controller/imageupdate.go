package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/Masterminds/sprig/v3"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	imagev1 "converge.dev/converge/internal/api/fluxcd/image/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/setters"
	"converge.dev/converge/internal/source/git"
	"converge.dev/converge/internal/writeback"
)

// defaultCommitMessage is Flux's.
const defaultCommitMessage = "Update from image update automation"

// ImageUpdateAutomationReconciler writes the ImagePolicies' picks into
// Git at their markers, commits and pushes.
type ImageUpdateAutomationReconciler struct {
	Client client.Client
	// Engine resolves the branch head, so that a run with nothing new
	// clones nothing.
	Engine *engine.Engine

	gate *gate
}

// SetupWithManager registers the reconciler. A policy's new pick wakes
// the automations of its namespace.
func (r *ImageUpdateAutomationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&imagev1.ImageUpdateAutomation{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&imagev1.ImagePolicy{}, handler.EnqueueRequestsFromMapFunc(r.byPolicy))
	_, err := r.gate.build(b, &imagev1.ImageUpdateAutomation{}, &imagev1.ImageUpdateAutomationList{}, r)
	return err
}

func (r *ImageUpdateAutomationReconciler) byPolicy(ctx context.Context, o client.Object) []reconcile.Request {
	var list imagev1.ImageUpdateAutomationList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, a := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: a.Namespace, Name: a.Name}})
	}
	return out
}

// errAutomation is a spec the automation cannot run with until it
// changes.
var errAutomation = errors.New("invalid automation")

// automationRun is what one run did.
type automationRun struct {
	revision string
	policies map[string]imagev1.ImageRef
	commit   string
	branch   string
}

// Reconcile runs one ImageUpdateAutomation.
func (r *ImageUpdateAutomationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	a := &imagev1.ImageUpdateAutomation{}
	unsupported, err := getFlux(ctx, r.Client, req.NamespacedName, a)
	if err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if a.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	orig := a.DeepCopy()
	st := &a.Status
	gen := a.Generation
	interval := flux.Interval(&a.Spec.Interval, 30*time.Minute)
	st.LastHandledReconcileAt = a.Annotations[ReconcileRequestAnnotation]
	flux.MarkUnsupported(&st.Conditions, gen, unsupported)

	forced := a.Annotations[ReconcileRequestAnnotation] != orig.Status.LastHandledReconcileAt
	run, reason, err := r.run(ctx, a, unsupported, forced)
	if run.revision != "" {
		st.ObservedSourceRevision = run.revision
	}
	if run.policies != nil {
		st.ObservedPolicies = run.policies
	}
	switch {
	case err != nil:
		// Nothing was committed or pushed.
		flux.MarkFailed(&st.Conditions, gen, reason, err.Error(), errors.Is(err, errAutomation))
	case run.commit != "":
		now := metav1.Now()
		st.LastPushCommit, st.LastPushTime, st.LastAutomationRunTime = run.commit, &now, &now
		flux.MarkReady(&st.Conditions, gen, flux.SucceededReason, fmt.Sprintf("pushed commit '%.7s' to branch '%s'", run.commit, run.branch))
	default:
		flux.MarkReady(&st.Conditions, gen, flux.SucceededReason, "repository up-to-date")
	}
	st.ObservedGeneration = gen
	if !equality.Semantic.DeepEqual(orig.Status, a.Status) {
		if requeue, perr := patchStatus(ctx, r.Client, a, orig); perr != nil || requeue {
			return ctrl.Result{Requeue: requeue}, perr
		}
	}
	switch {
	case errors.Is(err, errAutomation):
		return ctrl.Result{}, nil
	case err != nil:
		return ctrl.Result{RequeueAfter: min(interval, 30*time.Second)}, nil
	}
	return resync(interval), nil
}

// run checks out the source, sets every marker of a selected policy,
// and commits and pushes if that changed anything. Any marker naming a
// policy that does not exist, or a selected one that has no pick, fails
// the run before anything is written: a half-updated repository is not
// pushed.
func (r *ImageUpdateAutomationReconciler) run(ctx context.Context, a *imagev1.ImageUpdateAutomation, unsupported []string, forced bool) (automationRun, string, error) {
	var out automationRun
	for _, f := range unsupported {
		if strings.HasPrefix(f, "spec.git.commit.signingKey") {
			// Pushing unsigned commits where signed ones were asked for
			// would pass a signature check's purpose by.
			return out, "SigningUnsupported", fmt.Errorf("%w: spec.git.commit.signingKey: converge does not sign commits; nothing is pushed", errAutomation)
		}
	}
	g := a.Spec.GitSpec
	if g == nil || g.Commit.Author.Email == "" {
		return out, "InvalidSpec", fmt.Errorf("%w: spec.git.commit.author.email is required", errAutomation)
	}
	if u := a.Spec.Update; u != nil && u.Strategy != "" && u.Strategy != "Setters" {
		return out, "InvalidSpec", fmt.Errorf("%w: spec.update.strategy %q: only Setters is supported", errAutomation, u.Strategy)
	}
	tmpl, err := template.New("message").Funcs(sprig.TxtFuncMap()).Parse(orDefault(g.Commit.MessageTemplate, defaultCommitMessage))
	if err != nil {
		return out, "InvalidSpec", fmt.Errorf("%w: spec.git.commit.messageTemplate: %w", errAutomation, err)
	}
	if k := a.Spec.SourceRef.Kind; k != "" && k != "GitRepository" {
		return out, "InvalidSpec", fmt.Errorf("%w: spec.sourceRef.kind %q: only GitRepository is supported", errAutomation, k)
	}
	key := types.NamespacedName{Namespace: orDefault(a.Spec.SourceRef.Namespace, a.Namespace), Name: a.Spec.SourceRef.Name}
	repo := &sourcev1.GitRepository{}
	if err := r.Client.Get(ctx, key, repo); err != nil {
		return out, "SourceNotFound", fmt.Errorf("spec.sourceRef: GitRepository %s: %w", key, err)
	}
	auth, err := flux.GitAuth(ctx, r.Client, repo)
	if err != nil {
		return out, "AuthenticationFailed", fmt.Errorf("GitRepository %s: %w", key, err)
	}
	branch := ""
	if g.Checkout != nil {
		branch = g.Checkout.Reference.Branch
	}
	if branch == "" && repo.Spec.Ref != nil {
		if branch = repo.Spec.Ref.Branch; branch == "" {
			return out, "InvalidSpec", fmt.Errorf("%w: GitRepository %s follows no branch: set spec.git.checkout.ref.branch", errAutomation, key)
		}
	}
	selector := metav1.LabelSelector{}
	if a.Spec.PolicySelector != nil {
		selector = *a.Spec.PolicySelector
	}
	sel, err := metav1.LabelSelectorAsSelector(&selector)
	if err != nil {
		return out, "InvalidPolicySelector", fmt.Errorf("%w: spec.policySelector: %w", errAutomation, err)
	}
	var pols imagev1.ImagePolicyList
	if err := r.Client.List(ctx, &pols, client.InNamespace(a.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return out, "ListFailed", fmt.Errorf("list ImagePolicies: %w", err)
	}
	selected := map[types.NamespacedName]*imagev1.ImagePolicy{}
	out.policies = map[string]imagev1.ImageRef{}
	for i := range pols.Items {
		p := &pols.Items[i]
		selected[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = p
		if p.Status.LatestRef != nil {
			out.policies[p.Name] = *p.Status.LatestRef
		}
	}

	timeout := flux.Interval(repo.Spec.Timeout, time.Minute)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !forced && r.unchanged(cctx, a, repo.Spec.URL, branch, auth, out.policies) {
		// The last run at this head with these picks changed nothing.
		imageAutomationRuns.WithLabelValues("unchanged").Inc()
		out.revision = a.Status.ObservedSourceRevision
		return out, "", nil
	}
	imageAutomationRuns.WithLabelValues("cloned").Inc()
	co, err := writeback.Clone(cctx, repo.Spec.URL, branch, auth)
	if err != nil {
		return out, flux.GitOperationFailedReason, fmt.Errorf("GitRepository %s: %w", key, err)
	}
	defer co.Close()
	out.revision = co.Branch + "@sha1:" + co.Commit
	path := ""
	if a.Spec.Update != nil {
		path = a.Spec.Update.Path
	}
	markers, err := setters.Find(co.Dir, path)
	if err != nil {
		// Not errAutomation: a push, not a spec change, mends the files,
		// so the run is retried.
		return out, "InvalidMarker", fmt.Errorf("nothing committed: %w", err)
	}
	images := map[types.NamespacedName]setters.Image{}
	var bad []string
	for _, m := range markers {
		where := fmt.Sprintf("%s:%d: marker %s", m.File, m.Line, m.Ref)
		if p, ok := selected[m.Ref.Policy]; ok {
			if p.Status.LatestRef == nil || !meta.IsStatusConditionTrue(p.Status.Conditions, flux.ReadyCondition) {
				bad = append(bad, fmt.Sprintf("%s: ImagePolicy %s is not ready: %s", where, m.Ref.Policy,
					orDefault(readyMessage(p.Status.Conditions), "it has not picked an image yet")))
				continue
			}
			ref := p.Status.LatestRef
			images[m.Ref.Policy] = setters.Image{Name: ref.Name, Tag: ref.Tag, Digest: ref.Digest}
			continue
		}
		// Not this automation's: another's, unless it names nothing.
		err := r.Client.Get(ctx, m.Ref.Policy, &imagev1.ImagePolicy{})
		if apierrors.IsNotFound(err) {
			bad = append(bad, fmt.Sprintf("%s: ImagePolicy %s does not exist", where, m.Ref.Policy))
		} else if err != nil {
			return out, "ListFailed", fmt.Errorf("%s: %w", where, err)
		}
	}
	if len(bad) > 0 {
		return out, "InvalidMarker", fmt.Errorf("nothing committed: %s", strings.Join(bad, "; "))
	}
	res, err := setters.Apply(co.Dir, path, images)
	if err != nil {
		return out, "InvalidMarker", fmt.Errorf("nothing committed: %w", err)
	}
	if len(res.FileChanges) == 0 {
		return out, "", nil
	}
	var msg bytes.Buffer
	data := struct {
		AutomationObject types.NamespacedName
		Changed          setters.Result
		Values           map[string]string
	}{types.NamespacedName{Namespace: a.Namespace, Name: a.Name}, res, g.Commit.MessageTemplateValues}
	if err := tmpl.Execute(&msg, data); err != nil {
		return out, "InvalidSpec", fmt.Errorf("%w: spec.git.commit.messageTemplate: %w", errAutomation, err)
	}
	commit, err := co.CommitAll(msg.String(), orDefault(g.Commit.Author.Name, g.Commit.Author.Email), g.Commit.Author.Email)
	if err != nil {
		return out, flux.GitOperationFailedReason, err
	}
	out.branch = co.Branch
	if g.Push != nil && g.Push.Branch != "" {
		out.branch = g.Push.Branch
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if out.branch == co.Branch {
		// Without force: a commit pushed meanwhile fails this run, and the
		// next one starts from it.
		err = co.PushBase(pctx)
	} else {
		// The push branch is the automation's own, as in Flux: replaced.
		err = co.Push(pctx, out.branch)
	}
	if err == nil && g.Push != nil && g.Push.Refspec != "" {
		err = co.PushRefSpec(pctx, g.Push.Refspec)
	}
	if err != nil {
		return out, flux.GitOperationFailedReason, err
	}
	out.commit = commit
	// The branch the GitRepository follows: its ref's, or with none, the
	// default branch (what was cloned, unless the checkout named another).
	followed := ""
	if repo.Spec.Ref != nil {
		followed = repo.Spec.Ref.Branch
	} else if branch == "" {
		followed = co.Branch
	}
	if followed != "" && out.branch == followed {
		// The source need not wait for its interval to see the commit.
		patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+ReconcileRequestAnnotation+`":"`+time.Now().UTC().Format(time.RFC3339Nano)+`"}}}`))
		_ = r.Client.Patch(ctx, repo, patch)
	}
	return out, "", nil
}

// unchanged reports whether the last run, Ready at this generation,
// saw the branch's current head and the same picks: a run now would
// find what it found. It asks the Git cache for the head (a fetch of
// what is new) rather than cloning.
func (r *ImageUpdateAutomationReconciler) unchanged(ctx context.Context, a *imagev1.ImageUpdateAutomation, url, branch string, auth git.Auth,
	policies map[string]imagev1.ImageRef) bool {
	st := a.Status
	if r.Engine == nil || st.ObservedGeneration != a.Generation || !meta.IsStatusConditionTrue(st.Conditions, flux.ReadyCondition) ||
		!equality.Semantic.DeepEqual(st.ObservedPolicies, policies) {
		return false
	}
	rev := ""
	if branch != "" {
		rev = flux.Revision(&sourcev1.GitRepositoryRef{Branch: branch})
	}
	head, err := r.Engine.Resolve(ctx, url, rev, auth)
	return err == nil && strings.HasSuffix(st.ObservedSourceRevision, "@sha1:"+head)
}

// readyMessage is the Ready condition's message, if any.
func readyMessage(conds []metav1.Condition) string {
	if c := meta.FindStatusCondition(conds, flux.ReadyCondition); c != nil {
		return c.Message
	}
	return ""
}
