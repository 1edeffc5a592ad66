package controller

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/forge"
	"converge.dev/converge/internal/promotion"
	"converge.dev/converge/internal/source/git"
	"converge.dev/converge/internal/stage"
)

// PipelineLabel marks a Promotion with its Pipeline's name.
const PipelineLabel = "converge.dev/pipeline"

// PromotionFinalizer holds a Promotion until its pull request is closed.
const PromotionFinalizer = "converge.dev/promotion"

// AbortAnnotation on a Promotion aborts it: its pull request is closed
// with the annotation's value as the reason.
const AbortAnnotation = "converge.dev/abort"

// PipelineReconciler observes every stage of a Pipeline, keeps each
// stage's bake clock, creates a Promotion when a stage's source runs new
// digests, and drives each Promotion through its pull request: gates,
// merge, and live verification.
type PipelineReconciler struct {
	Client client.Client
	// Reader reads units, workloads and pods from the API server, not
	// from a cache: a promotion decides on what runs now, and caching
	// every pod of the cluster for it would cost more than a few reads.
	Reader client.Reader
	Engine *engine.Engine
	gate   *gate
	checks *checkCache
	// charts loads a HelmRelease stage's chart to render it at a pull
	// request head; nil fails such a stage's manifest gate.
	charts *chartLoader
}

// SetupWithManager registers the reconciler.
func (r *PipelineReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.checks = newCheckCache()
	b := ctrl.NewControllerManagedBy(mgr).
		For(&convergev1.Pipeline{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&convergev1.Promotion{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			p := o.(*convergev1.Promotion)
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Spec.Pipeline}}}
		}), builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})))
	_, err := r.gate.build(b, &convergev1.Pipeline{}, &convergev1.PipelineList{}, r)
	return err
}

// Reconcile observes, promotes, and records.
func (r *PipelineReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := &convergev1.Pipeline{}
	if err := r.Client.Get(ctx, req.NamespacedName, p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	now := time.Now()
	orig := p.DeepCopy()
	run := &pipelineRun{r: r, p: p, now: now, running: map[string]stage.Running{}, obs: map[string]promotion.Observation{}}
	err := run.do(ctx)
	st := &p.Status
	st.ObservedGeneration, st.StageCount = p.Generation, len(p.Spec.Stages)
	cond := metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Observed", ObservedGeneration: p.Generation,
		Message: run.summary()}
	if err != nil {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "Failed", err.Error()
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	// Once per round, after proposing: it names the promotion that makes
	// Git match, and it holds even when the round failed after observing.
	meta.SetStatusCondition(&st.Conditions, rolledBackCondition(p))
	// A stage whose only news is that it was observed again keeps the
	// written observedAt until a heartbeat has passed: a steady state
	// writes nothing most rounds. The clock in memory saw this round.
	for i := range st.Stages {
		prev := stage.StatusOf(orig, st.Stages[i].Name).ObservedAt
		if prev != nil && now.Sub(prev.Time) < stage.HeartbeatOf(p) {
			st.Stages[i].ObservedAt = prev
		}
	}
	if !equality.Semantic.DeepEqual(orig.Status, p.Status) {
		if uerr := r.Client.Status().Update(ctx, p); uerr != nil && !apierrors.IsConflict(uerr) {
			return ctrl.Result{}, fmt.Errorf("pipeline %s: status: %w", req, uerr)
		}
	}
	return ctrl.Result{RequeueAfter: run.requeue()}, nil
}

// pipelineRun is one reconcile of one Pipeline.
type pipelineRun struct {
	r       *PipelineReconciler
	p       *convergev1.Pipeline
	now     time.Time
	running map[string]stage.Running
	obs     map[string]promotion.Observation
	fg      forge.Forge
	auth    git.Auth
	// promos are the pipeline's Promotions, read once per round.
	promos []convergev1.Promotion
	// wake is the soonest a bake or a verification needs a look.
	wake time.Duration
}

func (run *pipelineRun) requeue() time.Duration {
	d := stage.IntervalOf(run.p)
	if run.wake > 0 && run.wake < d {
		d = run.wake + time.Second
	}
	return d
}

func (run *pipelineRun) summary() string {
	n := 0
	for _, s := range run.p.Status.Stages {
		if s.Healthy && len(s.Digests) > 0 {
			n++
		}
	}
	return fmt.Sprintf("%d of %d stages run pinned digests healthy", n, len(run.p.Spec.Stages))
}

func (run *pipelineRun) do(ctx context.Context) error {
	p := run.p
	// Observe every stage first: a promotion decides on this read.
	var stages []convergev1.StageStatus
	for _, s := range p.Spec.Stages {
		running, err := stage.Observe(ctx, run.r.Reader, p, s)
		if err != nil {
			running = stage.Running{Why: err.Error()}
		}
		prev := stage.StatusOf(p, s.Name)
		o := stage.ClockOf(run.p).Observe(stage.ObservationOf(prev), running.Seen(), run.now)
		run.running[s.Name], run.obs[s.Name] = running, o
		st := convergev1.StageStatus{Name: s.Name, Digests: running.Digests, Images: running.Images, Revision: running.Revision,
			Healthy: running.Healthy, Message: running.Why, HealthySince: metaTime(o.HealthySince), UnhealthySince: metaTime(o.UnhealthySince),
			ObservedAt: &metav1.Time{Time: run.now}, Reset: o.Reset, Verified: prev.Verified, Hold: prev.Hold,
			RolledBack: rolledBack(prev.RolledBack, running.Rollback, run.now)}
		stages = append(stages, st)
	}
	p.Status.Stages = stages

	var list convergev1.PromotionList
	if err := run.r.Client.List(ctx, &list, client.InNamespace(p.Namespace), client.MatchingLabels{PipelineLabel: p.Name}); err != nil {
		return fmt.Errorf("list promotions: %w", err)
	}
	if err := run.connect(ctx); err != nil {
		return err
	}
	if !p.Spec.Suspend {
		if err := run.propose(ctx, &list); err != nil {
			return err
		}
		if err := run.proposeGitMatch(ctx, &list); err != nil {
			return err
		}
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].CreationTimestamp.Before(&list.Items[j].CreationTimestamp) })
	run.promos = list.Items
	var errs []error
	for i := range list.Items {
		if err := run.drive(ctx, &list.Items[i]); err != nil {
			errs = append(errs, fmt.Errorf("promotion %s: %w", list.Items[i].Name, err))
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// connect reads the forge token and builds the forge client.
func (run *pipelineRun) connect(ctx context.Context) error {
	spec := run.p.Spec.Repo
	sec := &corev1.Secret{}
	key := types.NamespacedName{Namespace: run.p.Namespace, Name: spec.SecretRef.Name}
	if err := run.r.Client.Get(ctx, key, sec); err != nil {
		return fmt.Errorf("spec.repo.secretRef %s: %w", key, err)
	}
	token := string(sec.Data["token"])
	if token == "" {
		return fmt.Errorf("spec.repo.secretRef %s: no token key", key)
	}
	user := string(sec.Data["username"])
	if user == "" {
		user = "converge"
	}
	g, err := forge.NewGitea(spec.URL, token)
	if err != nil {
		return fmt.Errorf("spec.repo.url: %w", err)
	}
	g.Client = &http.Client{Transport: countingTransport{http.DefaultTransport}, Timeout: time.Minute}
	run.fg, run.auth = g, git.Auth{Username: user, Password: token}
	return nil
}

// propose creates a Promotion for each stage whose source runs pinned,
// healthy digests the stage does not run, and supersedes the stage's
// older open ones. A freight promoted to a stage once is not proposed
// to it again by itself: a rollback must not be undone automatically.
func (run *pipelineRun) propose(ctx context.Context, list *convergev1.PromotionList) error {
	p := run.p
	for _, s := range p.Spec.Stages {
		if s.From == "" {
			continue
		}
		src, ok := run.running[s.From]
		if !ok {
			return fmt.Errorf("stage %s: from %q is not a stage of the pipeline", s.Name, s.From)
		}
		if len(src.Digests) == 0 || run.obs[s.From].HealthySince == nil || promotion.SameDigests(src.Digests, run.running[s.Name].Digests) {
			continue
		}
		if stage.StatusOf(p, s.Name).Hold != nil {
			continue // rolled back: only a person promotes into it now
		}
		name := promotionName(p.Name, s.Name, promotion.FreightID(src.Artifacts))
		if slices.ContainsFunc(list.Items, func(o convergev1.Promotion) bool { return o.Name == name }) {
			continue
		}
		promo := NewPromotion(p, s.Name, "auto", src.Artifacts)
		if err := controllerutil.SetOwnerReference(p, promo, run.r.Client.Scheme()); err != nil {
			return err
		}
		if err := run.r.Client.Create(ctx, promo); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("stage %s: create promotion %s: %w", s.Name, name, err)
		}
		list.Items = append(list.Items, *promo)
	}
	return nil
}

// NewPromotion is a Promotion of arts into stage stageName of p, for a
// reason (auto, manual or rollback), named by its freight. A rollback's
// name also has the time: the freight it goes back to was promoted
// into the stage before, under the plain name.
func NewPromotion(p *convergev1.Pipeline, stageName, reason string, arts []promotion.Artifact) *convergev1.Promotion {
	id := promotion.FreightID(arts)
	name := promotionName(p.Name, stageName, id)
	if reason == "rollback" {
		name += "-rollback-" + strconv.FormatInt(time.Now().Unix(), 36)
	}
	return &convergev1.Promotion{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: p.Namespace,
		Labels: map[string]string{PipelineLabel: p.Name}, Finalizers: []string{PromotionFinalizer}},
		Spec: convergev1.PromotionSpec{Pipeline: p.Name, Stage: stageName, Reason: reason, Freight: freightOf(id, arts)}}
}

// promotionName is deterministic: the same freight to the same stage is
// the same Promotion, so a restart never makes a second.
func promotionName(pipeline, stageName, freightID string) string {
	return pipeline + "-" + stageName + "-" + promotion.ShortID(freightID)
}

func freightOf(id string, arts []promotion.Artifact) convergev1.Freight {
	f := convergev1.Freight{ID: id}
	for _, a := range arts {
		f.Artifacts = append(f.Artifacts, convergev1.FreightArtifact{Name: a.Name, Image: a.Image, Tag: a.Tag, Digest: a.Digest})
	}
	return f
}

func artifactsOf(f convergev1.Freight) []promotion.Artifact {
	out := make([]promotion.Artifact, 0, len(f.Artifacts))
	for _, a := range f.Artifacts {
		out = append(out, promotion.Artifact{Name: a.Name, Image: a.Image, Tag: a.Tag, Digest: a.Digest})
	}
	return out
}

func metaTime(t *time.Time) *metav1.Time {
	if t == nil {
		return nil
	}
	return &metav1.Time{Time: *t}
}
