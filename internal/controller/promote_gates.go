package controller

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/dialect/argocd"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/forge"
	"converge.dev/converge/internal/promotion"
	"converge.dev/converge/internal/source/oci"
	"converge.dev/converge/internal/stage"
)

// headChecks are the gates that depend only on the pull request's head:
// evaluated once per head, not every round.
type headChecks struct {
	results  map[string]promotion.Result
	risk     string
	riskWhy  string
	images   []promotion.ImageChange
	evidence []promotion.Link
	contract promotion.Contract
}

// checkCache holds headChecks by promotion and head.
type checkCache struct {
	mu sync.Mutex
	m  map[types.UID]map[string]*headChecks
}

func newCheckCache() *checkCache { return &checkCache{m: map[types.UID]map[string]*headChecks{}} }

func (c *checkCache) get(uid types.UID, head string) *headChecks {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[uid][head]
}

func (c *checkCache) put(uid types.UID, head string, h *headChecks) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Only the newest head matters.
	c.m[uid] = map[string]*headChecks{head: h}
}

func (c *checkCache) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, uid)
}

// gates evaluates every gate of the stage's risk for the pull request.
func (run *pipelineRun) gates(ctx context.Context, promo *convergev1.Promotion, s convergev1.PipelineStage, pr forge.State) ([]promotion.Result, error) {
	st := &promo.Status
	hc := run.r.checks.get(promo.UID, pr.Head)
	if hc == nil {
		var err error
		base := pr.MergeBase
		if base == "" && promo.Status.PR != nil {
			base = promo.Status.PR.Base
		}
		if hc, err = run.checkHead(ctx, promo, s, base, pr.Head); err != nil {
			return nil, err
		}
		run.r.checks.put(promo.UID, pr.Head, hc)
	}
	st.Risk, st.RiskReason = hc.risk, hc.riskWhy
	st.Rollback = &convergev1.RollbackContract{Mode: hc.contract.Mode, RollForward: hc.contract.RollForward}
	for _, c := range hc.contract.Checks {
		st.Rollback.Checks = append(st.Rollback.Checks, convergev1.RollbackCheck{Dimension: c.Dimension, Mode: c.Mode, Message: c.Message})
	}
	var out []promotion.Result
	approvers := []string(nil)
	for _, g := range promotion.Table(hc.risk) {
		r := promotion.Result{Name: g.Name, Requirement: g.Requirement}
		if g.Name == promotion.GateRollback && promo.Spec.Reason == "rollback" {
			r.Requirement = promotion.Required // going back must be possible, at any risk
		}
		switch g.Name {
		case promotion.GateBake:
			r.Phase, r.Message = run.bake(promo, s)
		case promotion.GateTests:
			if run.p.Spec.TestsContext == "" {
				c := hc.results[g.Name]
				r.Phase, r.Message = c.Phase, c.Message
				break
			}
			var err error
			if r.Phase, r.Message, err = run.testsStatus(ctx, pr.Head); err != nil {
				return nil, err
			}
		case promotion.GateApproval:
			reviews, err := run.fg.Reviews(ctx, pr.Number)
			if err != nil {
				return nil, fmt.Errorf("reviews of #%d: %w", pr.Number, err)
			}
			approvers = forge.Approvers(reviews, pr.Author)
			need := s.Approvals
			if need <= 0 {
				need = 1
			}
			if len(approvers) >= need {
				r.Phase, r.Message = promotion.Passed, "approved by "+strings.Join(approvers, ", ")
			} else {
				r.Phase, r.Message = promotion.Pending, fmt.Sprintf("%d of %d approvals from someone other than %s", len(approvers), need, pr.Author)
			}
		default:
			c, ok := hc.results[g.Name]
			if !ok {
				return nil, fmt.Errorf("gate %s has no evaluator", g.Name)
			}
			r.Phase, r.Message = c.Phase, c.Message
		}
		out = append(out, r)
	}
	body := promotion.Body(promotion.BodyInput{Pipeline: run.p.Name, Stage: s.Name, From: s.From, Reason: promo.Spec.Reason,
		Risk: hc.risk, RiskWhy: hc.riskWhy, Images: hc.images, Evidence: hc.evidence, Deployment: run.deployment(s),
		Gates: out, Approvers: approvers, Author: pr.Author, ApprovalRequired: requirement(out, promotion.GateApproval) == promotion.Required,
		Rollback: &hc.contract, ClusterRollback: promo.Annotations[ClusterRollbackAnnotation]})
	if next := promotion.Splice(pr.Body, body); next != pr.Body {
		if err := run.fg.SetBody(ctx, pr.Number, next); err != nil {
			return nil, fmt.Errorf("body of #%d: %w", pr.Number, err)
		}
	}
	return out, nil
}

// testsStatus is the tests gate from CI's commit status on the head,
// read every round: CI may still be running, or run again.
func (run *pipelineRun) testsStatus(ctx context.Context, head string) (promotion.Phase, string, error) {
	want := run.p.Spec.TestsContext
	sts, err := run.fg.Statuses(ctx, head)
	if err != nil {
		return "", "", fmt.Errorf("statuses of %s: %w", short(head, 12), err)
	}
	for _, st := range sts {
		if st.Context != want {
			continue
		}
		what := fmt.Sprintf("CI status %s on %s is %s", want, short(head, 12), st.State)
		if st.Description != "" {
			what += ": " + st.Description
		}
		if st.TargetURL != "" {
			what += " (" + st.TargetURL + ")"
		}
		switch st.State {
		case forge.StatusSuccess:
			return promotion.Passed, what, nil
		case forge.StatusFailure, forge.StatusError:
			return promotion.Failed, what, nil
		}
		return promotion.Pending, what, nil
	}
	return promotion.Pending, fmt.Sprintf("no CI status %s on %s yet", want, short(head, 12)), nil
}

func requirement(rs []promotion.Result, name string) promotion.Requirement {
	for _, r := range rs {
		if r.Name == name {
			return r.Requirement
		}
	}
	return ""
}

// bake asks the one bake clock about the source stage.
func (run *pipelineRun) bake(promo *convergev1.Promotion, s convergev1.PipelineStage) (promotion.Phase, string) {
	if s.From == "" {
		return promotion.Passed, "no source stage: nothing to bake"
	}
	if promo.Spec.Reason == "rollback" {
		return promotion.Passed, "a rollback does not bake: it goes back to what ran before"
	}
	ok, left, msg := promotion.Soaked(run.obs[s.From], stage.ClockOf(run.p), promotion.Digests(artifactsOf(promo.Spec.Freight)), stage.BakeOf(s), run.now)
	if ok {
		return promotion.Passed, s.From + " " + msg
	}
	if left > 0 {
		run.soon(left)
	}
	return promotion.Pending, s.From + " " + msg
}

func (run *pipelineRun) deployment(s convergev1.PipelineStage) string {
	if s.From == "" {
		return ""
	}
	r, o := run.running[s.From], run.obs[s.From]
	msg := fmt.Sprintf("stage %s runs %s at revision %s", s.From, strings.Join(r.Images, ", "), short(r.Revision, 40))
	if o.HealthySince != nil {
		msg += ", Healthy since " + o.HealthySince.UTC().Format("2006-01-02 15:04:05Z")
	}
	return msg
}

// report sets each gate's commit status on the head, and the summary
// converge/promotion that branch protection requires, where they
// changed since last reported.
func (run *pipelineRun) report(ctx context.Context, promo *convergev1.Promotion, pr forge.State, results []promotion.Result) error {
	st := &promo.Status
	// st.Gates are what was reported on st.PR.Head (cleared when the
	// head moves).
	prev := map[string]convergev1.GateStatus{}
	for _, g := range st.Gates {
		prev[g.Name] = g
	}
	verdict, msg := promotion.Verdict(results)
	all := append([]promotion.Result{{Name: "", Requirement: promotion.Required, Phase: verdict, Message: msg}}, results...)
	var next []convergev1.GateStatus
	for _, r := range all {
		g := convergev1.GateStatus{Name: r.Name, Requirement: string(r.Requirement), Phase: string(r.Phase), Message: r.Message}
		next = append(next, g)
		if prev[r.Name] == g {
			continue
		}
		ctxName := "converge/promotion"
		if r.Name != "" {
			ctxName = "converge/gate/" + r.Name
		}
		state := forge.StatusPending
		switch r.Phase {
		case promotion.Passed:
			state = forge.StatusSuccess
		case promotion.Failed:
			state = forge.StatusFailure
		}
		desc := r.Message
		if r.Name != "" {
			desc = string(r.Requirement) + ": " + desc
		}
		if err := run.fg.SetStatus(ctx, pr.Head, forge.Status{Context: ctxName, State: state, Description: desc}); err != nil {
			return fmt.Errorf("status %s on %s: %w", ctxName, short(pr.Head, 12), err)
		}
	}
	st.Gates = next
	return nil
}

// checkHead evaluates the gates that depend on the head's content: the
// evidence files, the targets' render, and the server's dry run.
func (run *pipelineRun) checkHead(ctx context.Context, promo *convergev1.Promotion, s convergev1.PipelineStage, base, head string) (*headChecks, error) {
	hc := &headChecks{results: map[string]promotion.Result{}}
	arts := artifactsOf(promo.Spec.Freight)
	snap, err := run.r.Engine.Snapshot(ctx, engine.Unit{RepoURL: run.p.Spec.Repo.URL, Revision: head, Auth: run.auth})
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", short(head, 12), err)
	}
	found, bad, err := readEvidence(snap.Dir, arts)
	if err != nil {
		return nil, err
	}
	byType := map[string][]foundEvidence{}
	for _, f := range found {
		byType[f.item.Type] = append(byType[f.item.Type], f)
		hc.evidence = append(hc.evidence, promotion.Link{Type: f.item.Type, URI: f.item.URI, Path: f.recorded.Path})
	}
	for _, t := range promotion.EvidenceTypes {
		if len(byType[t]) == 0 {
			hc.evidence = append(hc.evidence, promotion.Link{Type: t})
		}
	}
	// perDigest is gate judged by each digest's evidence of type typ.
	perDigest := func(gate, typ string, judge func(foundEvidence) (promotion.Phase, string)) {
		var msgs []string
		phase := promotion.Passed
		for _, a := range arts {
			var item *foundEvidence
			for i, f := range byType[typ] {
				if f.item.Subject == a.Digest {
					item = &byType[typ][i]
				}
			}
			if item == nil {
				if phase != promotion.Failed {
					phase = promotion.Pending
				}
				msgs = append(msgs, fmt.Sprintf("no %s evidence for %s %s (converge evidence add --type %s)", typ, a.Name, a.Digest[:19], typ))
				continue
			}
			p, m := judge(*item)
			if p == promotion.Failed || (p == promotion.Pending && phase == promotion.Passed) {
				phase = p
			}
			msgs = append(msgs, m)
		}
		hc.results[gate] = promotion.Result{Name: gate, Phase: phase, Message: strings.Join(msgs, "; ")}
	}
	perDigest(promotion.GateTests, "build", func(f foundEvidence) (promotion.Phase, string) {
		if f.item.Result == "failed" {
			return promotion.Failed, "build and tests failed: " + orDefault(f.item.URI, f.recorded.Path)
		}
		return promotion.Passed, "build and tests passed: " + orDefault(f.item.URI, f.recorded.Path)
	})
	perDigest(promotion.GateScan, "scan", func(f foundEvidence) (promotion.Phase, string) {
		switch {
		case f.item.Critical != nil && *f.item.Critical > 0:
			return promotion.Failed, fmt.Sprintf("scan of %s found %d critical vulnerabilities: %s", f.item.Subject[:19], *f.item.Critical, orDefault(f.item.URI, f.recorded.Path))
		case f.item.Result == "failed":
			return promotion.Failed, "scan failed: " + orDefault(f.item.URI, f.recorded.Path)
		}
		return promotion.Passed, "no critical findings: " + orDefault(f.item.URI, f.recorded.Path)
	})
	perDigest(promotion.GateChangeTicket, "change-ticket", func(f foundEvidence) (promotion.Phase, string) {
		return promotion.Passed, "ticket " + orDefault(f.item.URI, f.recorded.Path)
	})
	irreversible := false
	for _, f := range byType["migration"] {
		irreversible = irreversible || f.item.Migration == "irreversible"
	}
	migrations, rollForward := rollbackEvidence(found)
	if promo.Spec.Reason == "rollback" {
		// Going back from a rollback is going back to what runs now: its
		// migration evidence is the one that counts.
		back, _, err := readEvidence(snap.Dir, artifactsOf(convergev1.Freight{Artifacts: promo.Status.Previous}))
		if err != nil {
			return nil, err
		}
		migrations, _ = rollbackEvidence(back)
	}
	run.checkEvidence(hc, snap.Dir, s, promo, found, bad)
	run.checkTags(ctx, hc, s, arts)
	heads := run.checkTargets(ctx, hc, s, promo, head)
	// The base is rendered once, for the contract and for risk: auto.
	from := orDefault(base, orDefault(run.p.Spec.Repo.BaseBranch, "main"))
	bases := run.rendersAt(ctx, s, from)
	hc.contract = run.contract(ctx, promo, s, from, bases, heads, migrations, rollForward)
	phase, msg := hc.contract.Gate()
	hc.results[promotion.GateRollback] = promotion.Result{Phase: phase, Message: msg}
	switch s.Risk {
	case promotion.RiskAuto:
		change, err := run.change(ctx, s, base, snap.Dir, bases, heads)
		if err != nil {
			return nil, err
		}
		change.IrreversibleMigration = irreversible
		hc.risk, hc.riskWhy = promotion.AutoRisk(change)
	case promotion.RiskHigh:
		hc.risk, hc.riskWhy = promotion.RiskHigh, "set by the pipeline"
	default:
		hc.risk, hc.riskWhy = promotion.RiskLow, "set by the pipeline"
	}
	return hc, nil
}

// checkTags asks the registry what each artifact's tag names now. A tag
// that moved is reported, and the digest that runs in the source stage is
// still the one promoted: a tag never stands in for a digest.
func (run *pipelineRun) checkTags(ctx context.Context, hc *headChecks, s convergev1.PipelineStage, arts []promotion.Artifact) {
	phase := promotion.Passed
	var msgs []string
	for _, a := range arts {
		if a.Tag == "" {
			msgs = append(msgs, a.Name+" has no tag: its digest is its name")
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, now, err := run.r.Engine.ResolveOCI(rctx, "oci://"+a.Image, oci.Ref{Tag: a.Tag}, oci.Auth{Insecure: loopback(a.Image)})
		cancel()
		switch {
		case err != nil:
			if phase == promotion.Passed {
				phase = promotion.Pending
			}
			msgs = append(msgs, fmt.Sprintf("cannot tell whether %s:%s moved: %v", a.Image, a.Tag, err))
		case now != a.Digest:
			phase = promotion.Failed
			msgs = append(msgs, fmt.Sprintf("tag %s:%s moved: the registry now names %s; promoting %s, the digest running in %s (a tag never replaces a digest)",
				a.Image, a.Tag, now, a.Digest, orDefault(s.From, "the source")))
		default:
			msgs = append(msgs, fmt.Sprintf("%s:%s still names %s", a.Image, a.Tag, promotion.ShortID(a.Digest)))
		}
	}
	hc.results[promotion.GateTag] = promotion.Result{Phase: phase, Message: strings.Join(msgs, "; ")}
}

// loopback says whether an image's registry is on this machine, where
// plain HTTP is the norm.
func loopback(image string) bool {
	host, _, _ := strings.Cut(image, "/")
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = host
	}
	return h == "localhost" || net.ParseIP(h).IsLoopback()
}

// checkTargets renders each target at the head (manifest gate), dry-runs
// it against the cluster (policy gate), and looks for a progressive
// rollout; it returns the renders by target, for risk: auto.
func (run *pipelineRun) checkTargets(ctx context.Context, hc *headChecks, s convergev1.PipelineStage, promo *convergev1.Promotion, head string) map[convergev1.StageTarget]targetRender {
	renders := map[convergev1.StageTarget]targetRender{}
	var manifest, policy []string
	progressive := false
	want := promotion.Digests(artifactsOf(promo.Spec.Freight))
	// The "-" side is what the stage runs now, read live.
	old := previousRefs(promo)
	for _, t := range s.Targets {
		tr, err := run.targetAt(ctx, t, head)
		if err != nil {
			manifest = append(manifest, err.Error())
			continue
		}
		renders[t] = tr
		reached := map[string]bool{}
		for _, d := range tr.objects {
			o := d.Object
			if k := o.GetKind(); k == "Rollout" || k == "Canary" {
				progressive = true
			}
			for _, c := range containersOf(o) {
				im, err := promotion.ParseImage(c.image)
				if err != nil {
					continue
				}
				for _, a := range promo.Spec.Freight.Artifacts {
					if im.Repository != a.Image {
						continue
					}
					reached[a.Name] = true
					where := fmt.Sprintf("%s %s container %s (%s)", o.GetKind(), nsName(o, tr.namespace), c.name, d.Source.File)
					if msg := promotion.Pinned(c.image); msg != "" {
						manifest = append(manifest, where+": "+msg)
					} else if im.Digest != want[a.Name] {
						manifest = append(manifest, fmt.Sprintf("%s renders %s, not the promoted %s", where, im.Digest[:19], want[a.Name][:19]))
					}
					hc.images = append(hc.images, promotion.ImageChange{Object: o.GetKind() + " " + nsName(o, tr.namespace), Container: c.name, Old: old[a.Name], New: c.image})
				}
			}
		}
		for _, a := range promo.Spec.Freight.Artifacts {
			if !reached[a.Name] {
				manifest = append(manifest, fmt.Sprintf("%s %s/%s renders no container of %s at %s: the locator does not reach this target", t.Kind, t.Namespace, t.Name, a.Image, short(head, 12)))
			}
		}
		if err := tr.admit(ctx); err != nil {
			policy = append(policy, fmt.Sprintf("%s %s/%s: %v", t.Kind, t.Namespace, t.Name, err))
		}
	}
	if len(manifest) > 0 {
		hc.results[promotion.GateManifest] = promotion.Result{Phase: promotion.Failed, Message: strings.Join(manifest, "; ")}
		hc.results[promotion.GatePolicy] = promotion.Result{Phase: promotion.Failed, Message: "not dry-run: the render failed the manifest gate"}
	} else {
		hc.results[promotion.GateManifest] = promotion.Result{Phase: promotion.Passed, Message: fmt.Sprintf("every promoted image renders pinned to its digest (%d of %d targets)", len(s.Targets), len(s.Targets))}
		if len(policy) > 0 {
			hc.results[promotion.GatePolicy] = promotion.Result{Phase: promotion.Failed, Message: strings.Join(policy, "; ")}
		} else {
			hc.results[promotion.GatePolicy] = promotion.Result{Phase: promotion.Passed, Message: "the cluster's admission accepts every object (server-side dry run)"}
		}
	}
	if progressive {
		hc.results[promotion.GateProgressive] = promotion.Result{Phase: promotion.Passed, Message: "the target renders a progressive rollout (Argo Rollout or Flagger Canary)"}
	} else {
		hc.results[promotion.GateProgressive] = promotion.Result{Phase: promotion.Failed, Message: "no Argo Rollout or Flagger Canary in the target's render: the change reaches every pod at once"}
	}
	sort.Slice(hc.images, func(i, j int) bool {
		return hc.images[i].Object+hc.images[i].Container < hc.images[j].Object+hc.images[j].Container
	})
	return renders
}

func nsName(o *unstructured.Unstructured, dest string) string {
	ns := o.GetNamespace()
	if ns == "" {
		ns = orDefault(dest, "default")
	}
	return ns + "/" + o.GetName()
}

// unitAt is target's unit at revision, built as its reconciler builds it.
func (run *pipelineRun) unitAt(ctx context.Context, t convergev1.StageTarget, revision string) (engine.Unit, error) {
	key := types.NamespacedName{Namespace: t.Namespace, Name: t.Name}
	name := fmt.Sprintf("%s %s", t.Kind, key)
	var u engine.Unit
	switch t.Kind {
	case "Application":
		app := &v1alpha1.Application{}
		if err := run.r.Client.Get(ctx, key, app); err != nil {
			return u, fmt.Errorf("%s: %w", name, err)
		}
		if !argocd.InClusterDestination(app.Spec.Destination) {
			return u, fmt.Errorf("%s: it deploys to cluster %s; gates against another cluster are not built yet", name, orDefault(app.Spec.Destination.Name, app.Spec.Destination.Server))
		}
		var err error
		if u, _, err = argocd.ToUnit(app); err != nil {
			return u, fmt.Errorf("%s: %w", name, err)
		}
	case "Kustomization":
		ks := &kustomizev1.Kustomization{}
		if err := run.r.Client.Get(ctx, key, ks); err != nil {
			return u, fmt.Errorf("%s: %w", name, err)
		}
		if k := ks.Spec.SourceRef.Kind; k != "GitRepository" && k != "" {
			return u, fmt.Errorf("%s: its source is a %s; a promotion renders Git sources at the pull request head", name, k)
		}
		repo := &sourcev1.GitRepository{}
		if err := run.r.Client.Get(ctx, types.NamespacedName{Namespace: orDefault(ks.Spec.SourceRef.Namespace, ks.Namespace), Name: ks.Spec.SourceRef.Name}, repo); err != nil {
			return u, fmt.Errorf("%s: source: %w", name, err)
		}
		src, err := flux.SourceOf(repo, nil)
		if err != nil {
			return u, fmt.Errorf("%s: %w", name, err)
		}
		if src.Includes, err = gitIncludes(ctx, run.r.Client, repo); err != nil {
			return u, fmt.Errorf("%s: %w", name, err)
		}
		kr := &KustomizationReconciler{Client: run.r.Client}
		vars, err := kr.substituteFrom(ctx, ks)
		if err != nil {
			return u, fmt.Errorf("%s: %w", name, err)
		}
		keys, err := kr.ageKeys(ctx, ks)
		if err != nil {
			return u, fmt.Errorf("%s: %w", name, err)
		}
		if u, _, err = flux.ToUnit(ks, src, vars, keys); err != nil {
			return u, fmt.Errorf("%s: %w", name, err)
		}
		if u.Auth, err = flux.GitAuth(ctx, run.r.Client, repo); err != nil {
			return u, fmt.Errorf("%s: %w", name, err)
		}
	default:
		return u, fmt.Errorf("%s: kind %q is not Application, Kustomization or HelmRelease", name, t.Kind)
	}
	if !sameRepo(u.RepoURL, run.p.Spec.Repo.URL) {
		return u, fmt.Errorf("%s renders from %s, not the pipeline's repository %s", name, u.RepoURL, run.p.Spec.Repo.URL)
	}
	u.Revision = revision
	if u.Auth.Username == "" && u.Auth.Password == "" && u.Auth.BearerToken == "" && len(u.Auth.SSHKey) == 0 {
		u.Auth = run.auth
	}
	return u, nil
}

func sameRepo(a, b string) bool {
	norm := func(s string) string { return strings.TrimSuffix(strings.TrimSuffix(s, "/"), ".git") }
	return norm(a) == norm(b)
}

type container struct{ name, image string }

// containersOf lists the containers of a workload, pod, job or cron job.
func containersOf(o *unstructured.Unstructured) []container {
	var out []container
	spec := promotion.PodSpec(o)
	for _, field := range []string{"initContainers", "containers"} {
		list, _ := spec[field].([]any)
		for _, c := range list {
			m, _ := c.(map[string]any)
			name, _ := m["name"].(string)
			image, _ := m["image"].(string)
			if image != "" {
				out = append(out, container{name, image})
			}
		}
	}
	return out
}
