package controller

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/forge"
	"converge.dev/converge/internal/forgetest"
	"converge.dev/converge/internal/promotion"
	"converge.dev/converge/internal/stage"
)

const ordersImage = "registry.example.com/orders-api"

func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

const promoBase = `apiVersion: apps/v1
kind: Deployment
metadata: {name: orders-api}
spec:
  replicas: 2
  selector: {matchLabels: {app: orders-api}}
  template:
    metadata: {labels: {app: orders-api}}
    spec:
      containers:
      - name: api
        image: registry.example.com/orders-api
`

func overlay(tag, digest string) string {
	return fmt.Sprintf(`# the stage's overlay: only the image moves here
resources: [../../base]
images:
- name: registry.example.com/orders-api  # promoted by converge
  newTag: "%s"
  digest: %s
`, tag, digest)
}

func prodPatch(ref string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata: {name: orders-api}
spec:
  template:
    spec:
      containers:
      - name: api
        image: ` + ref + ` # converge writes this line
`
}

func evidence(typ, digest, extra string) string {
	return fmt.Sprintf("type: %s\nsubject: %s\nuri: https://ci.example.com/%s/%s\n%s", typ, digest, typ, digest[7:15], extra)
}

// promotionWorld is a deploy repository on a real Gitea, three stages in
// three namespaces (dev and prod Argo CD Applications, staging a Flux
// Kustomization), and a Pipeline over them.
type promotionWorld struct {
	t                      testing.TB
	c                      client.Client
	f                      *forgetest.Forge
	repo                   *forgetest.Repo
	g                      *forge.Gitea
	ns, dev, staging, prod string
	// image is the artifact's repository (ordersImage unless given).
	image string
}

func newPromotionWorld(t testing.TB, d1 string) *promotionWorld {
	return newPromotionWorldFor(t, d1, ordersImage)
}

// newPromotionWorldFor is the world with image as the artifact.
func newPromotionWorldFor(t testing.TB, d1, image string) *promotionWorld {
	return newPromotionWorldWith(t, d1, image, nil)
}

// newPromotionWorldWith is the world whose first commit also has files,
// in place of the default ones of the same path.
func newPromotionWorldWith(t testing.TB, d1, image string, files map[string]string) *promotionWorld {
	c, _ := setup(t)
	w := &promotionWorld{t: t, c: c, f: forgetest.Start(t), image: image}
	w.repo = w.f.CreateRepo(t, "deploy")
	initial := map[string]string{
		"apps/orders/base/deployment.yaml":                promoBase,
		"apps/orders/base/kustomization.yaml":             "resources: [deployment.yaml]\n",
		"apps/orders/overlays/dev/kustomization.yaml":     overlay("1.0.0", d1),
		"apps/orders/overlays/staging/kustomization.yaml": overlay("1.0.0", d1),
		"apps/orders/overlays/prod/kustomization.yaml":    "resources: [../../base]\npatches:\n- path: image.yaml\n",
		"apps/orders/overlays/prod/image.yaml":            prodPatch(ordersImage + ":1.0.0@" + d1),
	}
	for k, v := range files {
		initial[k] = v
	}
	w.push("initial", initial)
	w.repo.Protect("main", []string{"converge/promotion"}, 0)
	var err error
	if w.g, err = forge.NewGitea(w.repo.CloneURL, w.f.Token); err != nil {
		t.Fatal(err)
	}
	w.ns, w.dev, w.staging, w.prod = clustertest.Namespace(t), clustertest.Namespace(t), clustertest.Namespace(t), clustertest.Namespace(t)
	ns := w.ns
	create(t, c, &v1alpha1.AppProject{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
		Spec: v1alpha1.AppProjectSpec{SourceRepos: []string{"*"}, Destinations: []v1alpha1.ApplicationDestination{{Server: "*", Namespace: "*"}}}})
	a := app(w.dev, "orders-dev", w.repo.CloneURL, "apps/orders/overlays/dev", nil)
	a.Namespace = ns
	create(t, c, a)
	a = app(w.prod, "orders-prod", w.repo.CloneURL, "apps/orders/overlays/prod", nil)
	a.Namespace = ns
	create(t, c, a)
	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "deploy", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: w.repo.CloneURL, Ref: &sourcev1.GitRepositoryRef{Branch: "main"}, Interval: metav1.Duration{Duration: 10 * time.Minute}}})
	create(t, c, &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "orders-staging", Namespace: ns},
		Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "deploy"},
			Path: "./apps/orders/overlays/staging", TargetNamespace: w.staging, Prune: true, Interval: metav1.Duration{Duration: 10 * time.Minute}}})
	create(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "forge-token", Namespace: ns},
		StringData: map[string]string{"token": w.f.Token, "username": w.f.User}})
	return w
}

func (w *promotionWorld) pipeline(stagingBake, prodBake time.Duration) *convergev1.Pipeline {
	p := w.pipelineObject(stagingBake, prodBake)
	create(w.t, w.c, p)
	return p
}

// pipelineObject is the test's Pipeline: dev from CI, staging from dev
// (low risk, auto-merge), prod from staging (high risk).
func (w *promotionWorld) pipelineObject(stagingBake, prodBake time.Duration) *convergev1.Pipeline {
	kz := func(env string) convergev1.StageLocator {
		return convergev1.StageLocator{Path: "apps/orders/overlays/" + env + "/kustomization.yaml", Kind: "kustomize-images"}
	}
	p := &convergev1.Pipeline{ObjectMeta: metav1.ObjectMeta{Name: "orders-api", Namespace: w.ns},
		Spec: convergev1.PipelineSpec{
			Repo:      convergev1.PipelineRepo{URL: w.repo.CloneURL, BaseBranch: "main", Forge: "gitea", SecretRef: corev1.LocalObjectReference{Name: "forge-token"}},
			Artifacts: []convergev1.PipelineArtifact{{Name: "app", Image: w.image}},
			Interval:  &metav1.Duration{Duration: 2 * time.Second},
			Grace:     &metav1.Duration{Duration: 10 * time.Second},
			Stages: []convergev1.PipelineStage{
				{Name: "dev", Targets: []convergev1.StageTarget{{Kind: "Application", Namespace: w.ns, Name: "orders-dev"}}, Locator: kz("dev")},
				{Name: "staging", From: "dev", Targets: []convergev1.StageTarget{{Kind: "Kustomization", Namespace: w.ns, Name: "orders-staging"}},
					Locator: kz("staging"), Risk: "low", Bake: &metav1.Duration{Duration: stagingBake}, AutoMerge: true},
				{Name: "prod", From: "staging", Targets: []convergev1.StageTarget{{Kind: "Application", Namespace: w.ns, Name: "orders-prod"}},
					Locator: convergev1.StageLocator{Path: "apps/orders/overlays/prod/image.yaml", Kind: "yaml-path", Field: "spec.template.spec.containers[0].image"},
					Risk:    "high", Bake: &metav1.Duration{Duration: prodBake}},
			}}}
	return p
}

// waitStages waits until every stage runs digest, pinned and healthy.
func (w *promotionWorld) waitStages(digests map[string]string) *convergev1.Pipeline {
	w.t.Helper()
	p := &convergev1.Pipeline{}
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := w.c.Get(ctx, types.NamespacedName{Namespace: w.ns, Name: "orders-api"}, p); err != nil {
			return false, nil
		}
		for name, d := range digests {
			s := stage.StatusOf(p, name)
			if s.Digests["app"] != d || !s.Healthy {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		w.t.Fatalf("stages never ran %v: %+v", digests, p.Status)
	}
	return p
}

// waitPromotion waits for the named promotion to satisfy cond.
func (w *promotionWorld) waitPromotion(name, what string, timeout time.Duration, cond func(*convergev1.Promotion) bool) *convergev1.Promotion {
	w.t.Helper()
	pr := &convergev1.Promotion{}
	err := wait.PollUntilContextTimeout(context.Background(), 300*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if err := w.c.Get(ctx, types.NamespacedName{Namespace: w.ns, Name: name}, pr); err != nil {
			return false, nil
		}
		return cond(pr), nil
	})
	if err != nil {
		p := &convergev1.Pipeline{}
		_ = w.c.Get(context.Background(), types.NamespacedName{Namespace: w.ns, Name: "orders-api"}, p)
		w.t.Fatalf("promotion %s never %s: phase %s: %s\ngates %+v\npipeline %+v", name, what, pr.Status.Phase, pr.Status.Message, pr.Status.Gates, p.Status)
	}
	return pr
}

// push pushes files to main as CI would, with the world's image in place
// of ordersImage.
func (w *promotionWorld) push(msg string, files map[string]string) string {
	w.t.Helper()
	out := make(map[string]string, len(files))
	for k, v := range files {
		out[k] = strings.ReplaceAll(v, ordersImage, w.image)
	}
	return w.repo.Push(msg, out)
}

func (w *promotionWorld) refresh(name string) {
	w.t.Helper()
	a := &v1alpha1.Application{}
	a.Namespace, a.Name = w.ns, name
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+RefreshAnnotation+`":"hard"}}}`))
	if err := w.c.Patch(context.Background(), a, patch); err != nil {
		w.t.Fatal(err)
	}
}

func gateOf(p *convergev1.Promotion, name string) convergev1.GateStatus {
	for _, g := range p.Status.Gates {
		if g.Name == name {
			return g
		}
	}
	return convergev1.GateStatus{}
}

// fileAt reads a file of the deploy repository at ref through the API.
func (w *promotionWorld) fileAt(path, ref string) string {
	w.t.Helper()
	var out struct {
		Content string `json:"content"`
	}
	w.f.API(w.t, "GET", fmt.Sprintf("/repos/%s/deploy/contents/%s?ref=%s", w.f.User, path, ref), nil, &out)
	data, err := base64.StdEncoding.DecodeString(out.Content)
	if err != nil {
		w.t.Fatal(err)
	}
	return string(data)
}

// TestPromotionWholeFlow is the seed's §7 end to end: CI pushes a new
// digest to dev; dev converges; a staging pull request opens with the
// rendered digest diff, the evidence links and the gates; branch
// protection refuses an early merge; it auto-merges after the bake;
// staging (a Flux Kustomization) converges and is Verified, with the
// evidence file and trailers in the merge; the prod pull request (an Argo
// CD Application, high risk) opens and is held until someone other than
// the author approves.
func TestPromotionWholeFlow(t *testing.T) {
	d1, d2 := digestOf("orders-api 1.0.0"), digestOf("orders-api 1.1.0")
	w := newPromotionWorld(t, d1)
	ctx := context.Background()
	w.pipeline(15*time.Second, 2*time.Second)
	settled := w.waitStages(map[string]string{"dev": d1, "staging": d1, "prod": d1})
	// A steady state writes only a heartbeat (every 5 rounds of 2s): in
	// any 8s, four rounds, at most one write.
	writes, rv := 0, settled.ResourceVersion
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if now := w.pipelineNow(); now.ResourceVersion != rv {
			writes, rv = writes+1, now.ResourceVersion
		}
	}
	if writes > 1 {
		t.Errorf("four steady rounds wrote the Pipeline %d times", writes)
	}
	var promos convergev1.PromotionList
	if err := w.c.List(ctx, &promos, client.InNamespace(w.ns)); err != nil || len(promos.Items) != 0 {
		t.Fatalf("stages that agree got promotions: %v %v", promos.Items, err)
	}

	// CI: build 1.1.0, record its evidence, write it to dev.
	w.push("ci: orders-api 1.1.0", map[string]string{
		"apps/orders/overlays/dev/kustomization.yaml": overlay("1.1.0", d2),
		promotion.EvidencePath(d2, "build"):           evidence("build", d2, "result: passed\n"),
		promotion.EvidencePath(d2, "scan"):            evidence("scan", d2, "critical: 0\n"),
	})
	w.refresh("orders-dev")
	id := promotion.FreightID([]promotion.Artifact{{Name: "app", Image: ordersImage, Digest: d2}})
	staging := w.waitPromotion(promotionName("orders-api", "staging", id), "opened a pull request", 2*time.Minute, func(p *convergev1.Promotion) bool {
		return p.Status.PR != nil && gateOf(p, promotion.GateBake).Phase != ""
	})
	if staging.Spec.Reason != "auto" || staging.Spec.Freight.Artifacts[0].Digest != d2 || staging.Spec.Freight.Artifacts[0].Tag != "1.1.0" {
		t.Errorf("freight %+v", staging.Spec)
	}
	pr, err := w.g.Get(ctx, staging.Status.PR.Number)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"- image: " + ordersImage + ":1.0.0@" + d1, "+ image: " + ordersImage + ":1.1.0@" + d2,
		"- build: https://ci.example.com/build/", "- scan: https://ci.example.com/scan/", "- smoke: **missing**",
		"**bake** (required, pending): dev healthy", "dev deployment: stage dev runs " + ordersImage + ":1.1.0@" + d2,
	} {
		if !strings.Contains(pr.Body, want) {
			t.Errorf("the pull request body lacks %q:\n%s", want, pr.Body)
		}
	}
	// A person merging before the gates pass is refused by the forge.
	if staging.Status.Phase != convergev1.PhaseVerified {
		if _, err := w.g.Merge(ctx, pr.Number, forge.Merge{Head: pr.Head}); !errors.Is(err, forge.ErrChecksPending) && !errors.Is(err, forge.ErrNotOpen) {
			t.Errorf("an early merge: %v", err)
		}
	}
	staging = w.waitPromotion(staging.Name, "Verified", 3*time.Minute, func(p *convergev1.Promotion) bool { return p.Status.Phase == convergev1.PhaseVerified })
	if g := gateOf(staging, promotion.GateBake); g.Phase != "passed" {
		t.Errorf("merged with bake %+v", g)
	}
	if staging.Status.MergedAt.Sub(staging.Status.Source.HealthySince.Time) < 15*time.Second {
		t.Errorf("merged %s after dev became healthy, before the 15s bake", staging.Status.MergedAt.Sub(staging.Status.Source.HealthySince.Time))
	}
	var commit struct {
		Commit struct {
			Message string `json:"message"`
		} `json:"commit"`
	}
	w.f.API(t, "GET", fmt.Sprintf("/repos/%s/deploy/git/commits/%s", w.f.User, staging.Status.PR.MergeCommit), nil, &commit)
	tr := promotion.ParseTrailers(commit.Commit.Message)
	if got := tr["Converge-Freight"]; len(got) != 1 || got[0] != id || tr["Converge-Stage"][0] != "staging" || tr["Converge-From-Stage"][0] != "dev" {
		t.Errorf("merge commit trailers %v in:\n%s", tr, commit.Commit.Message)
	}
	record := w.fileAt(promotion.RecordPath("staging"), "main")
	for _, want := range []string{"freight: " + id, "stage: staging", "from: dev", promotion.EvidencePath(d2, "scan"), "blob: "} {
		if !strings.Contains(record, want) {
			t.Errorf("the evidence file lacks %q:\n%s", want, record)
		}
	}
	if got := w.fileAt("apps/orders/overlays/staging/kustomization.yaml", "main"); got != overlay("1.1.0", d2) {
		t.Errorf("the staging overlay was rewritten beyond its image:\n%s", got)
	}

	prod := w.waitPromotion(promotionName("orders-api", "prod", id), "held for approval", 2*time.Minute, func(p *convergev1.Promotion) bool {
		return gateOf(p, promotion.GateApproval).Phase == "pending"
	})
	if g := gateOf(prod, promotion.GateApproval); g.Requirement != "required" || !strings.Contains(g.Message, "0 of 1 approvals from someone other than "+w.f.User) {
		t.Errorf("approval gate %+v", g)
	}
	if g := gateOf(prod, promotion.GateEvidence); g.Phase != "passed" || !strings.Contains(g.Message, "staging recorded are unchanged") {
		t.Errorf("evidence gate at prod %+v", g)
	}
	reviewer := w.f.CreateUser(t, "reviewer")
	w.repo.AddWriter(reviewer)
	w.repo.Approve(reviewer, prod.Status.PR.Number)
	prod = w.waitPromotion(prod.Name, "approved", time.Minute, func(p *convergev1.Promotion) bool {
		return gateOf(p, promotion.GateApproval).Phase == "passed"
	})
	if prod.Status.Phase == convergev1.PhaseConverging || prod.Status.Phase == convergev1.PhaseVerified || prod.Status.Risk != "high" {
		t.Errorf("prod went on without its high-risk gates: %s %s %+v", prod.Status.Phase, prod.Status.Message, prod.Status.Gates)
	}
	// Someone edits the evidence staging recorded, and adds a job whose
	// image has a tag and no digest, on the pull request's branch: the
	// gates look at the new head and refuse both, by name.
	edited := w.repo.PushBranch(prod.Status.PR.Branch, "edit evidence", map[string]string{
		promotion.EvidencePath(d2, "scan"):             evidence("scan", d2, "critical: 0 # trust me\n"),
		"apps/orders/overlays/prod/kustomization.yaml": "resources: [../../base, migrate.yaml]\npatches:\n- path: image.yaml\n",
		"apps/orders/overlays/prod/migrate.yaml":       "apiVersion: batch/v1\nkind: Job\nmetadata: {name: migrate}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - {name: migrate, image: " + ordersImage + ":1.1.0}\n",
	})
	prod = w.waitPromotion(prod.Name, "refused the edited head", time.Minute, func(p *convergev1.Promotion) bool {
		return gateOf(p, promotion.GateEvidence).Phase == "failed" && gateOf(p, promotion.GateManifest).Phase == "failed"
	})
	if g := gateOf(prod, promotion.GateEvidence); !strings.Contains(g.Message, "scan.yaml changed since staging recorded it") {
		t.Errorf("evidence gate %+v", g)
	}
	if g := gateOf(prod, promotion.GateManifest); !strings.Contains(g.Message, "Job "+w.prod+"/migrate container migrate") || !strings.Contains(g.Message, "has a tag without a digest") {
		t.Errorf("manifest gate %+v", g)
	}
	if !strings.HasPrefix(prod.Status.Message, "refused: failed ") {
		t.Errorf("prod message %q", prod.Status.Message)
	}
	// Every gate is reported on the new head, the unchanged ones too.
	sts, err := w.g.Statuses(ctx, edited)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range sts {
		got[s.Context] = s.State
	}
	if got["converge/gate/tests"] != forge.StatusSuccess || got["converge/promotion"] != forge.StatusFailure || got["converge/gate/evidence"] != forge.StatusFailure {
		t.Errorf("statuses on the edited head %s: %v", edited[:12], got)
	}
	var all []struct {
		Number int `json:"number"`
	}
	w.f.API(t, "GET", fmt.Sprintf("/repos/%s/deploy/pulls?state=all", w.f.User), nil, &all)
	if len(all) != 2 {
		t.Errorf("%d pull requests, want staging's and prod's", len(all))
	}
}

// prState reads a pull request through the forge.
func (w *promotionWorld) prState(n int) forge.State {
	w.t.Helper()
	st, err := w.g.Get(context.Background(), n)
	if err != nil {
		w.t.Fatal(err)
	}
	return st
}

// TestPromotionRefusals walks one pipeline through the ways a promotion
// is refused, each with a named reason and nothing merged: a source stage
// running :latest, a digest not running in the source, a failed scan, a
// newer digest superseding an open promotion (its pull request closed
// with a comment), and a pull request a person closed.
func TestPromotionRefusals(t *testing.T) {
	d1, d2, d3 := digestOf("refusals 1"), digestOf("refusals 2"), digestOf("refusals 3")
	w := newPromotionWorld(t, d1)
	ctx := context.Background()
	w.pipeline(3*time.Second, time.Second)
	w.waitStages(map[string]string{"dev": d1, "staging": d1, "prod": d1})

	// dev runs :latest: it is not promotable, and the stage says why.
	w.push("ci: latest", map[string]string{"apps/orders/overlays/dev/kustomization.yaml": "resources: [../../base]\nimages:\n- name: " + ordersImage + "\n  newTag: latest\n"})
	w.refresh("orders-dev")
	var p convergev1.Pipeline
	err := wait.PollUntilContextTimeout(ctx, 300*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := w.c.Get(ctx, types.NamespacedName{Namespace: w.ns, Name: "orders-api"}, &p); err != nil {
			return false, nil
		}
		return strings.Contains(stage.StatusOf(&p, "dev").Message, "floats (:latest)"), nil
	})
	if err != nil {
		t.Fatalf("dev on :latest: %+v", p.Status.Stages)
	}
	if msg := stage.StatusOf(&p, "dev").Message; !strings.Contains(msg, "Deployment "+w.dev+"/orders-api container api") {
		t.Errorf("the refusal does not name the object and container: %s", msg)
	}
	if _, err := (stage.Running{Why: stage.StatusOf(&p, "dev").Message}).Pick("dev", ""); err == nil || !strings.Contains(err.Error(), "stage dev runs no pinned digest") {
		t.Errorf("a manual promotion from :latest: %v", err)
	}

	// A failed scan: the promotion opens, bakes, and is refused.
	w.push("ci: 2", map[string]string{
		"apps/orders/overlays/dev/kustomization.yaml": overlay("2.0.0", d2),
		promotion.EvidencePath(d2, "build"):           evidence("build", d2, "result: passed\n"),
		promotion.EvidencePath(d2, "scan"):            evidence("scan", d2, "critical: 3\n"),
	})
	w.refresh("orders-dev")
	id2 := promotion.FreightID([]promotion.Artifact{{Name: "app", Image: ordersImage, Digest: d2}})
	p2 := w.waitPromotion(promotionName("orders-api", "staging", id2), "refused by its scan after the bake", 2*time.Minute, func(p *convergev1.Promotion) bool {
		return gateOf(p, promotion.GateBake).Phase == "passed" && gateOf(p, promotion.GateScan).Phase == "failed"
	})
	if g := gateOf(p2, promotion.GateScan); !strings.Contains(g.Message, "found 3 critical vulnerabilities") {
		t.Errorf("scan gate %+v", g)
	}
	if !strings.HasPrefix(p2.Status.Message, "refused: failed scan") || p2.Status.Phase != convergev1.PhaseGating {
		t.Errorf("%s: %s", p2.Status.Phase, p2.Status.Message)
	}
	sts, err := w.g.Statuses(ctx, p2.Status.PR.Head)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, s := range sts {
		states[s.Context] = s.State
	}
	if states["converge/promotion"] != forge.StatusFailure || states["converge/gate/scan"] != forge.StatusFailure || states["converge/gate/bake"] != forge.StatusSuccess {
		t.Errorf("commit statuses %v", states)
	}
	// A digest that does not run in dev cannot be promoted by hand.
	devRun := stage.Running{Digests: map[string]string{"app": d2}, Artifacts: []promotion.Artifact{{Name: "app", Image: ordersImage, Digest: d2}},
		Images: []string{ordersImage + "@" + d2}}
	if _, err := devRun.Pick("dev", d1); err == nil || !strings.Contains(err.Error(), "digest "+d1+" is not running in stage dev") {
		t.Errorf("a digest not running: %v", err)
	}

	// A newer digest supersedes the open promotion and closes its PR. It
	// has no scan yet, so its own PR stays open until a person closes it:
	// with every required gate passed it could merge before the close.
	w.push("ci: 3", map[string]string{
		"apps/orders/overlays/dev/kustomization.yaml": overlay("3.0.0", d3),
		promotion.EvidencePath(d3, "build"):           evidence("build", d3, "result: passed\n"),
	})
	w.refresh("orders-dev")
	p2 = w.waitPromotion(p2.Name, "superseded", 2*time.Minute, func(p *convergev1.Promotion) bool { return p.Status.Phase == convergev1.PhaseSuperseded })
	if st := w.prState(p2.Status.PR.Number); st.Open || st.Merged {
		t.Errorf("the superseded promotion's PR: %+v", st)
	}
	id3 := promotion.FreightID([]promotion.Artifact{{Name: "app", Image: ordersImage, Digest: d3}})
	if !strings.Contains(p2.Status.Message, promotionName("orders-api", "staging", id3)) {
		t.Errorf("superseded message %q", p2.Status.Message)
	}

	// A person closes the new one: it fails by name, and no PR reopens.
	p3 := w.waitPromotion(promotionName("orders-api", "staging", id3), "opened", time.Minute, func(p *convergev1.Promotion) bool { return p.Status.PR != nil })
	if err := w.g.Close(ctx, p3.Status.PR.Number, "not today"); err != nil {
		t.Fatal(err)
	}
	p3 = w.waitPromotion(p3.Name, "failed", time.Minute, func(p *convergev1.Promotion) bool { return p.Status.Phase == convergev1.PhaseFailed })
	if !strings.Contains(p3.Status.Message, fmt.Sprintf("pull request #%d was closed without merging", p3.Status.PR.Number)) {
		t.Errorf("closed message %q", p3.Status.Message)
	}
	time.Sleep(5 * time.Second) // two more rounds
	var all []struct {
		Number int    `json:"number"`
		State  string `json:"state"`
		Merged bool   `json:"merged"`
	}
	w.f.API(t, "GET", fmt.Sprintf("/repos/%s/deploy/pulls?state=all", w.f.User), nil, &all)
	if len(all) != 2 {
		t.Errorf("%d pull requests after the close, want 2", len(all))
	}

	// Aborting a Promotion closes its pull request, and it stays closed;
	// deleting it then is a retry: the next round proposes it again.
	d4 := digestOf("refusals 4")
	w.push("ci: 4", map[string]string{"apps/orders/overlays/dev/kustomization.yaml": overlay("4.0.0", d4)})
	w.refresh("orders-dev")
	id4 := promotion.FreightID([]promotion.Artifact{{Name: "app", Image: ordersImage, Digest: d4}})
	p4 := w.waitPromotion(promotionName("orders-api", "staging", id4), "opened", time.Minute, func(p *convergev1.Promotion) bool { return p.Status.PR != nil })
	first := p4.Status.PR.Number
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+AbortAnnotation+`":"wrong build"}}}`))
	if err := w.c.Patch(ctx, p4, patch); err != nil {
		t.Fatal(err)
	}
	p4 = w.waitPromotion(p4.Name, "aborted", time.Minute, func(p *convergev1.Promotion) bool { return p.Status.Phase == convergev1.PhaseAborted })
	if st := w.prState(first); st.Open || p4.Status.Message != "aborted: wrong build" {
		t.Errorf("aborted: PR %+v, message %q", st, p4.Status.Message)
	}
	if err := w.c.Delete(ctx, p4); err != nil {
		t.Fatal(err)
	}
	again := w.waitPromotion(p4.Name, "proposed again", time.Minute, func(p *convergev1.Promotion) bool {
		return p.UID != p4.UID && p.Status.PR != nil
	})
	if again.Status.PR.Number == first || !w.prState(again.Status.PR.Number).Open {
		t.Errorf("the retry reuses #%d or is not open", again.Status.PR.Number)
	}
	w.f.API(t, "GET", fmt.Sprintf("/repos/%s/deploy/pulls?state=all", w.f.User), nil, &all)
	for _, pr := range all {
		if pr.Merged || (pr.State == "open" && pr.Number != again.Status.PR.Number) {
			t.Errorf("pull request %+v", pr)
		}
	}
	if len(all) != 4 {
		t.Errorf("%d pull requests, want 4", len(all))
	}
	staging := w.waitStages(map[string]string{"staging": d1})
	if d := stage.StatusOf(staging, "staging").Digests["app"]; d != d1 {
		t.Errorf("staging runs %s", d)
	}
}
