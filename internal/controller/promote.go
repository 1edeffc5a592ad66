package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	sigsyaml "sigs.k8s.io/yaml"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/forge"
	"converge.dev/converge/internal/locator"
	"converge.dev/converge/internal/plan"
	"converge.dev/converge/internal/promotion"
	"converge.dev/converge/internal/stage"
	"converge.dev/converge/internal/writeback"
)

// drive moves one Promotion on as far as it can go now, and records
// where it is.
func (run *pipelineRun) drive(ctx context.Context, promo *convergev1.Promotion) error {
	orig := promo.DeepCopy()
	err := run.step(ctx, promo)
	if err != nil && !convergev1.Terminal(promo.Status.Phase) {
		promo.Status.Message = err.Error()
	}
	if promo.DeletionTimestamp == nil && !equality.Semantic.DeepEqual(orig.Status, promo.Status) {
		if uerr := run.r.Client.Status().Update(ctx, promo); uerr != nil && !apierrors.IsConflict(uerr) && !apierrors.IsNotFound(uerr) {
			return fmt.Errorf("status: %w", uerr)
		}
	}
	if convergev1.Terminal(promo.Status.Phase) && promo.Status.Phase != orig.Status.Phase {
		run.r.checks.forget(promo.UID)
	}
	return err
}

func (run *pipelineRun) step(ctx context.Context, promo *convergev1.Promotion) error {
	st := &promo.Status
	if promo.DeletionTimestamp != nil {
		return run.release(ctx, promo)
	}
	if convergev1.Terminal(st.Phase) {
		return nil
	}
	s, ok := stage.SpecOf(run.p, promo.Spec.Stage)
	if !ok {
		st.Phase, st.Message = convergev1.PhaseFailed, fmt.Sprintf("spec.stage: %q is not a stage of pipeline %s", promo.Spec.Stage, run.p.Name)
		return nil
	}
	if reason := promo.Annotations[AbortAnnotation]; reason != "" {
		return run.end(ctx, promo, convergev1.PhaseAborted, "aborted: "+reason)
	}
	if newer := run.newer(promo); newer != "" {
		return run.end(ctx, promo, convergev1.PhaseSuperseded, "superseded by promotion "+newer)
	}
	if st.Phase == convergev1.PhaseConverging {
		return run.verify(promo)
	}
	if promo.Spec.Direct {
		if promo.Spec.Reason != "rollback" || !s.AllowDirectRollback {
			st.Phase, st.Message = convergev1.PhaseFailed, fmt.Sprintf("a direct push is allowed only for a rollback into a stage with allowDirectRollback: stage %s does not allow it; nothing was pushed", s.Name)
			return nil
		}
		return run.open(ctx, promo, s)
	}
	if st.PR == nil {
		if err := run.open(ctx, promo, s); err != nil || st.PR == nil {
			return err
		}
	}
	pr, err := run.fg.Get(ctx, st.PR.Number)
	if err != nil {
		return fmt.Errorf("pull request #%d: %w", st.PR.Number, err)
	}
	switch {
	case pr.Merged:
		run.merged(ctx, promo, pr.MergeCommit)
		return run.verify(promo)
	case !pr.Open:
		st.Phase, st.Message = convergev1.PhaseFailed, fmt.Sprintf("pull request #%d was closed without merging: nothing was promoted", pr.Number)
		return nil
	}
	if pr.Head != st.PR.Head {
		// Someone pushed to the branch: the gates look at what is there
		// now, and only that may merge. The new head has no statuses yet:
		// every gate is reported on it again.
		st.PR.Head, st.Gates = pr.Head, nil
	}
	results, err := run.gates(ctx, promo, s, pr)
	if err != nil {
		return err
	}
	if err := run.report(ctx, promo, pr, results); err != nil {
		return err
	}
	verdict, msg := promotion.Verdict(results)
	switch {
	case verdict == promotion.Failed:
		st.Phase, st.Message = convergev1.PhaseGating, "refused: "+msg
	case verdict == promotion.Pending:
		st.Phase, st.Message = convergev1.PhaseGating, msg
	case !s.AutoMerge:
		st.Phase, st.Message = convergev1.PhaseAwaitingMerge, fmt.Sprintf("all required gates passed; a person merges #%d", pr.Number)
	default:
		return run.merge(ctx, promo, s, results)
	}
	return nil
}

// newer names a Promotion to the same stage created after promo: the
// latest intent wins.
func (run *pipelineRun) newer(promo *convergev1.Promotion) string {
	for _, o := range run.promos {
		if o.Spec.Stage != promo.Spec.Stage || o.Name == promo.Name || o.DeletionTimestamp != nil {
			continue
		}
		if o.CreationTimestamp.After(promo.CreationTimestamp.Time) ||
			(o.CreationTimestamp.Equal(&promo.CreationTimestamp) && o.Name > promo.Name) {
			return o.Name
		}
	}
	return ""
}

// open writes the promotion commit on a branch of its own and opens its
// pull request, or adopts the one a previous run opened.
func (run *pipelineRun) open(ctx context.Context, promo *convergev1.Promotion, s convergev1.PipelineStage) error {
	st := &promo.Status
	branch := "converge/promote/" + s.Name + "/" + promotion.ShortID(promo.Spec.Freight.ID)
	if promo.Spec.Reason == "rollback" {
		branch = "converge/rollback/" + s.Name + "/" + promo.Name
	}
	if st.Source == nil && s.From != "" {
		o := run.obs[s.From]
		st.Source = &convergev1.PromotionSource{Stage: s.From, Revision: run.running[s.From].Revision,
			HealthySince: metaTime(o.HealthySince), ObservedAt: &metav1.Time{Time: o.ObservedAt}}
	}
	if st.Previous == nil {
		prev := run.running[s.Name].Artifacts
		if cr := run.running[s.Name].Rollback; cr != nil {
			prev = cr.Pinned // what Git pins: the cluster runs nothing promotable
		}
		st.Previous = freightOf("", prev).Artifacts
	}
	if found, ok, err := run.fg.Find(ctx, branch); err != nil {
		return fmt.Errorf("find pull request from %s: %w", branch, err)
	} else if ok {
		st.PR = &convergev1.PromotionPR{Number: found.Number, URL: found.URL, Branch: branch, Head: found.Head}
		st.Phase = convergev1.PhaseGating
		return nil
	}
	base := orDefault(run.p.Spec.Repo.BaseBranch, "main")
	co, err := writeback.Clone(ctx, run.p.Spec.Repo.URL, base, run.auth)
	if err != nil {
		return err
	}
	defer co.Close()
	arts := artifactsOf(promo.Spec.Freight)
	loc := locator.Locator{Path: s.Locator.Path, Kind: s.Locator.Kind, Field: s.Locator.Field, Format: s.Locator.Format}
	if _, err := locator.Write(co.Dir, loc, arts); err != nil {
		st.Phase, st.Message = convergev1.PhaseFailed, fmt.Sprintf("stage %s: %v", s.Name, err)
		return nil
	}
	found, _, err := readEvidence(co.Dir, arts)
	if err != nil {
		return err
	}
	rec := run.record(promo, s, found)
	migrations, rollForward := rollbackEvidence(found)
	if promo.Spec.Reason == "rollback" {
		back, _, err := readEvidence(co.Dir, artifactsOf(convergev1.Freight{Artifacts: st.Previous}))
		if err != nil {
			return err
		}
		migrations, _ = rollbackEvidence(back)
	}
	contract := run.contract(ctx, promo, s, co.Commit, run.rendersAt(ctx, s, co.Commit), nil, migrations, rollForward)
	rec.Rollback, rec.Direct = &contract, promo.Spec.Direct
	data, err := sigsyaml.Marshal(rec)
	if err != nil {
		return err
	}
	file := filepath.Join(co.Dir, filepath.FromSlash(promotion.RecordPath(s.Name)))
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		return err
	}
	title := promotionTitle(run.p.Name, s.Name, arts)
	head, err := co.CommitAll(title+"\n\n"+promotionMessage(promo, s)+"\n\n"+promotion.Trailers(rec), "converge", "converge@converge.dev")
	if errors.Is(err, writeback.ErrNothingChanged) {
		st.Phase, st.MergedAt = convergev1.PhaseConverging, &metav1.Time{Time: run.now}
		st.Message = fmt.Sprintf("%s already pins these digests at %s: waiting for stage %s to run them", base, short(co.Commit, 12), s.Name)
		return nil
	}
	if err != nil {
		return err
	}
	if promo.Spec.Direct {
		// The emergency path: no pull request, no gates. The same
		// evidence file and trailers say what was done and by which path.
		if err := co.PushBase(ctx); err != nil {
			return err
		}
		st.DirectCommit, st.MergedAt = head, &metav1.Time{Time: run.now}
		st.Phase = convergev1.PhaseConverging
		st.Message = fmt.Sprintf("pushed directly to %s as %s (emergency rollback: no pull request, no gates); waiting for stage %s to run it", base, short(head, 12), s.Name)
		for _, t := range s.Targets {
			run.refresh(ctx, t)
		}
		return nil
	}
	if err := co.Push(ctx, branch); err != nil {
		return err
	}
	opened, err := run.fg.Open(ctx, forge.PullRequest{Base: base, Head: branch, Title: title,
		Body: promotion.BodyBegin + "\nconverge is evaluating the gates.\n" + promotion.BodyEnd + "\n"})
	if err != nil {
		return fmt.Errorf("open pull request from %s: %w", branch, err)
	}
	st.PR = &convergev1.PromotionPR{Number: opened.Number, URL: opened.URL, Branch: branch, Base: co.Commit, Head: head}
	st.Phase, st.Message = convergev1.PhaseGating, fmt.Sprintf("opened #%d", opened.Number)
	return nil
}

func (run *pipelineRun) record(promo *convergev1.Promotion, s convergev1.PipelineStage, found []foundEvidence) promotion.Record {
	rec := promotion.Record{Pipeline: run.p.Namespace + "/" + run.p.Name, Stage: s.Name, From: s.From, Promotion: promo.Name,
		Reason: promo.Spec.Reason, Freight: promo.Spec.Freight.ID, Risk: orDefault(s.Risk, promotion.RiskLow)}
	prev := previousRefs(promo)
	for _, a := range artifactsOf(promo.Spec.Freight) {
		rec.Artifacts = append(rec.Artifacts, promotion.RecordedArtifact{Name: a.Name, Previous: prev[a.Name], Image: a.Reference()})
	}
	if src := promo.Status.Source; src != nil {
		rec.Source = &promotion.SourceRecord{Stage: src.Stage, Revision: src.Revision}
		if src.HealthySince != nil {
			t := src.HealthySince.Time
			rec.Source.HealthySince = &t
		}
		if src.ObservedAt != nil {
			rec.Source.ObservedAt = src.ObservedAt.Time
		}
	}
	for _, f := range found {
		rec.Evidence = append(rec.Evidence, f.recorded)
	}
	return rec
}

// previousRefs are the references the stage ran before, by artifact.
func previousRefs(promo *convergev1.Promotion) map[string]string {
	refs := map[string]string{}
	for _, a := range artifactsOf(convergev1.Freight{Artifacts: promo.Status.Previous}) {
		refs[a.Name] = a.Reference()
	}
	return refs
}

func promotionTitle(pipeline, stageName string, arts []promotion.Artifact) string {
	refs := make([]string, 0, len(arts))
	for _, a := range arts {
		ref := a.Image
		if a.Tag != "" {
			ref += ":" + a.Tag
		}
		refs = append(refs, ref+"@"+promotion.ShortID(a.Digest))
	}
	return fmt.Sprintf("Promote %s to %s: %s", pipeline, stageName, strings.Join(refs, ", "))
}

func promotionMessage(promo *convergev1.Promotion, s convergev1.PipelineStage) string {
	if why := promo.Annotations[ClusterRollbackAnnotation]; why != "" {
		return fmt.Sprintf("Git follows the cluster: stage %s was %s. This pins what it runs (freight %s).", s.Name, why, promo.Spec.Freight.ID)
	}
	if promo.Spec.Reason == "rollback" {
		return fmt.Sprintf("rollback of stage %s to freight %s.", s.Name, promo.Spec.Freight.ID)
	}
	if s.From == "" {
		return fmt.Sprintf("%s promotion of freight %s.", promo.Spec.Reason, promo.Spec.Freight.ID)
	}
	return fmt.Sprintf("%s promotion of the digests running in %s (freight %s).", promo.Spec.Reason, s.From, promo.Spec.Freight.ID)
}

// merge merges the pull request at the head the gates saw.
func (run *pipelineRun) merge(ctx context.Context, promo *convergev1.Promotion, s convergev1.PipelineStage, results []promotion.Result) error {
	st := &promo.Status
	arts := artifactsOf(promo.Spec.Freight)
	rec := run.record(promo, s, nil)
	var passed []string
	for _, r := range results {
		if r.Phase == promotion.Passed {
			passed = append(passed, r.Name)
		}
	}
	msg := promotionMessage(promo, s) + "\n\n" + promotion.Trailers(rec) + "Converge-Gates: passed " + strings.Join(passed, ", ") + "\n"
	commit, err := run.fg.Merge(ctx, st.PR.Number, forge.Merge{Head: st.PR.Head, Style: s.MergeStyle,
		Title: promotionTitle(run.p.Name, s.Name, arts) + fmt.Sprintf(" (#%d)", st.PR.Number), Message: msg, DeleteBranch: true})
	switch {
	case errors.Is(err, forge.ErrChecksPending), errors.Is(err, forge.ErrNotApproved):
		st.Phase, st.Message = convergev1.PhaseAwaitingMerge, "the forge refused the merge: "+err.Error()
		return nil
	case errors.Is(err, forge.ErrHeadMoved):
		st.Message = "the head moved while merging; the gates look again"
		return nil
	case err != nil:
		return fmt.Errorf("merge #%d: %w", st.PR.Number, err)
	}
	run.merged(ctx, promo, commit)
	return run.verify(promo)
}

// merged records the merge and asks the stage's units to fetch it now
// rather than at their next poll.
func (run *pipelineRun) merged(ctx context.Context, promo *convergev1.Promotion, commit string) {
	st := &promo.Status
	st.Phase, st.PR.MergeCommit, st.MergedAt = convergev1.PhaseConverging, commit, &metav1.Time{Time: run.now}
	st.Message = fmt.Sprintf("merged #%d as %s; waiting for stage %s to run it", st.PR.Number, short(commit, 12), promo.Spec.Stage)
	s, _ := stage.SpecOf(run.p, promo.Spec.Stage)
	for _, t := range s.Targets {
		run.refresh(ctx, t)
	}
}

// refresh marks a unit for an immediate reconcile, as a push webhook
// would. A failure only delays: the unit polls anyway.
func (run *pipelineRun) refresh(ctx context.Context, t convergev1.StageTarget) {
	now := run.now.UTC().Format(time.RFC3339Nano)
	annotate := func(o client.Object, key, value string) {
		patch := client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, key, value)))
		_ = run.r.Client.Patch(ctx, o, patch)
	}
	switch t.Kind {
	case "Application":
		app := &v1alpha1.Application{}
		app.Namespace, app.Name = t.Namespace, t.Name
		annotate(app, RefreshAnnotation, "normal")
	case "Kustomization":
		ks := &kustomizev1.Kustomization{}
		if err := run.r.Client.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: t.Name}, ks); err != nil {
			return
		}
		if ks.Spec.SourceRef.Kind == "GitRepository" || ks.Spec.SourceRef.Kind == "" {
			src := &sourcev1.GitRepository{}
			src.Namespace, src.Name = orDefault(ks.Spec.SourceRef.Namespace, ks.Namespace), ks.Spec.SourceRef.Name
			annotate(src, ReconcileRequestAnnotation, now)
		}
		annotate(ks, ReconcileRequestAnnotation, now)
	case "HelmRelease":
		// The merge changed the HelmRelease's manifest: the unit that
		// applies it takes the commit, and the release follows.
		hr := &helmv2.HelmRelease{}
		if err := run.r.Client.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: t.Name}, hr); err != nil {
			return
		}
		if parent, err := ownerTarget(hr.Annotations[plan.OwnerAnnotation]); err == nil {
			run.refresh(ctx, parent)
		}
		if c := hr.Spec.Chart; c != nil && c.Spec.SourceRef.Kind == "GitRepository" {
			src := &sourcev1.GitRepository{}
			src.Namespace, src.Name = orDefault(c.Spec.SourceRef.Namespace, hr.Namespace), c.Spec.SourceRef.Name
			annotate(src, ReconcileRequestAnnotation, now)
		}
		annotate(hr, ReconcileRequestAnnotation, now)
	}
}

// verify checks that the stage runs the freight live and Healthy.
func (run *pipelineRun) verify(promo *convergev1.Promotion) error {
	st := &promo.Status
	running := run.running[promo.Spec.Stage]
	want := promotion.Digests(artifactsOf(promo.Spec.Freight))
	if promotion.SameDigests(running.Digests, want) && running.Healthy {
		st.Phase, st.VerifiedAt = convergev1.PhaseVerified, &metav1.Time{Time: run.now}
		st.Message = fmt.Sprintf("stage %s runs %s, Healthy, at revision %s", promo.Spec.Stage, strings.Join(running.Images, ", "), running.Revision)
		for i := range run.p.Status.Stages {
			ss := &run.p.Status.Stages[i]
			if ss.Name != promo.Spec.Stage {
				continue
			}
			ss.Verified = promo.Name
			switch promo.Spec.Reason {
			case "rollback":
				// Kargo #3016: after a rollback, the freight rolled back
				// from (or a newer one) must not come straight back.
				ss.Hold = &convergev1.StageHold{Promotion: promo.Name, Since: metav1.Time{Time: run.now},
					Reason: fmt.Sprintf("rolled back to %s by %s: no automatic promotion until `converge promote release` or a manual promotion", strings.Join(running.Images, ", "), promo.Name)}
			case "manual":
				ss.Hold = nil // a person promoted into it on purpose
			}
		}
		return nil
	}
	if cr := running.Rollback; cr != nil && promotion.SameDigests(promotion.Digests(cr.Pinned), want) &&
		len(cr.Running) > 0 && !promotion.SameDigests(promotion.Digests(cr.Running), want) {
		// The stage's progressive-delivery controller refused this
		// freight and went back to its stable pods: waiting out the
		// timeout would not change that.
		st.Phase, st.Message = convergev1.PhaseFailed, fmt.Sprintf("merged, but stage %s was %s", promo.Spec.Stage, cr.Why)
		return nil
	}
	timeout := stage.VerifyTimeoutOf(run.p)
	merged := run.now
	if st.MergedAt != nil {
		merged = st.MergedAt.Time
	}
	why := running.Why
	if why == "" {
		why = "it runs " + strings.Join(running.Images, ", ")
	}
	if run.now.Sub(merged) > timeout {
		st.Phase, st.Message = convergev1.PhaseFailed, fmt.Sprintf("merged %s ago but stage %s is not running it Healthy within %s: %s", run.now.Sub(merged).Round(time.Second), promo.Spec.Stage, timeout, why)
		return nil
	}
	st.Message = fmt.Sprintf("merged; waiting for stage %s: %s", promo.Spec.Stage, why)
	run.soon(5 * time.Second)
	return nil
}

// end closes the promotion's pull request, if open, with a comment, and
// ends it in phase.
func (run *pipelineRun) end(ctx context.Context, promo *convergev1.Promotion, phase, why string) error {
	if pr := promo.Status.PR; pr != nil && promo.Status.Phase != convergev1.PhaseConverging {
		st, err := run.fg.Get(ctx, pr.Number)
		if err != nil {
			return fmt.Errorf("pull request #%d: %w", pr.Number, err)
		}
		if st.Open {
			if err := run.fg.Close(ctx, pr.Number, "converge closed this promotion: "+why+"."); err != nil {
				return fmt.Errorf("close #%d: %w", pr.Number, err)
			}
		}
	}
	promo.Status.Phase, promo.Status.Message = phase, why
	return nil
}

// release closes a deleted promotion's pull request and lets it go.
func (run *pipelineRun) release(ctx context.Context, promo *convergev1.Promotion) error {
	if !controllerutil.ContainsFinalizer(promo, PromotionFinalizer) {
		return nil
	}
	if !convergev1.Terminal(promo.Status.Phase) {
		if err := run.end(ctx, promo, convergev1.PhaseAborted, "the Promotion was deleted"); err != nil {
			return err
		}
	}
	patch := client.MergeFrom(promo.DeepCopy())
	controllerutil.RemoveFinalizer(promo, PromotionFinalizer)
	return client.IgnoreNotFound(run.r.Client.Patch(ctx, promo, patch))
}

// soon asks for the next look within d.
func (run *pipelineRun) soon(d time.Duration) {
	if run.wake == 0 || d < run.wake {
		run.wake = d
	}
}

func short(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
