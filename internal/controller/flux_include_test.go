package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/gittest"
)

// TestGitRepositoryInclude: a GitRepository includes a folder of
// another; a Kustomization builds across both. A commit to the included
// repository alone reaches the cluster through the including one, and an
// include that is not there is IncludeUnavailable.
func TestGitRepositoryInclude(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	common := gittest.NewRepo(t, t.TempDir()+"/common.git")
	common.Commit("common", map[string]string{
		"deploy/common/kustomization.yaml": "resources: [cm.yaml]\n",
		"deploy/common/cm.yaml":            configMapYAML("shared", "v1"),
		"deploy/other/cm.yaml":             configMapYAML("not-included", "x"),
	})
	common.Publish()
	repo.Commit("app", map[string]string{
		"apps/web/kustomization.yaml": "resources: [../../base/common, local.yaml]\n",
		"apps/web/local.yaml":         configMapYAML("local", "v1"),
	})
	repo.Publish()

	every := metav1.Duration{Duration: 10 * time.Minute}
	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "common", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: gittest.FileURL(common.Bare), Interval: every}})
	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: gittest.FileURL(repo.Bare), Interval: every,
			Include: []sourcev1.GitRepositoryInclude{{Repository: sourcev1.LocalObjectReference{Name: "common"},
				FromPath: "deploy/common", ToPath: "base/common"}}}})
	create(t, c, &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "app"},
			Path: "./apps/web", TargetNamespace: ns, Prune: true, Interval: every}})
	waitKustomization(t, c, ns, "web", "Ready", func(k *kustomizev1.Kustomization) bool { return isReady(k.Status.Conditions) })
	if configMapValue(c, ns, "shared") != "v1" || configMapValue(c, ns, "local") != "v1" {
		t.Fatalf("shared %q local %q, want v1 and v1", configMapValue(c, ns, "shared"), configMapValue(c, ns, "local"))
	}
	if v := configMapValue(c, ns, "not-included"); v != "" {
		t.Errorf("a file outside fromPath was applied")
	}
	app := &sourcev1.GitRepository{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "app"}, app); err != nil {
		t.Fatal(err)
	}
	if len(app.Status.IncludedArtifacts) != 1 || !strings.Contains(app.Status.IncludedArtifacts[0].Revision, "@sha1:") ||
		!strings.HasPrefix(app.Status.Artifact.Digest, "sha256:") {
		t.Errorf("status: artifact %+v included %+v", app.Status.Artifact, app.Status.IncludedArtifacts)
	}
	appRevision := app.Status.Artifact.Revision

	// Only the included repository changes: its new artifact makes a new
	// artifact of app (same revision, new digest) and the Kustomization
	// applies it without anyone touching app.
	common.Commit("v2", map[string]string{"deploy/common/cm.yaml": configMapYAML("shared", "v2")})
	common.Publish()
	cr := &sourcev1.GitRepository{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "common"}, cr); err != nil {
		t.Fatal(err)
	}
	if err := c.Patch(ctx, cr, rawMerge([]byte(`{"metadata":{"annotations":{"`+ReconcileRequestAnnotation+`":"now"}}}`))); err != nil {
		t.Fatal(err)
	}
	waitKustomization(t, c, ns, "web", "the included change applied", func(k *kustomizev1.Kustomization) bool {
		return configMapValue(c, ns, "shared") == "v2"
	})
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "app"}, app); err != nil {
		t.Fatal(err)
	}
	if app.Status.Artifact.Revision != appRevision {
		t.Errorf("app revision moved from %s to %s; only its digest should", appRevision, app.Status.Artifact.Revision)
	}

	t.Run("an include that is not there", func(t *testing.T) {
		create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "broken", Namespace: ns},
			Spec: sourcev1.GitRepositorySpec{URL: gittest.FileURL(repo.Bare), Interval: every,
				Include: []sourcev1.GitRepositoryInclude{{Repository: sourcev1.LocalObjectReference{Name: "missing"}}}}})
		deadline := time.Now().Add(time.Minute)
		for {
			b := &sourcev1.GitRepository{}
			if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "broken"}, b); err == nil {
				if cond := meta.FindStatusCondition(b.Status.Conditions, "IncludeUnavailable"); cond != nil {
					if !strings.Contains(cond.Message, ns+"/missing") || readyReason(b.Status.Conditions) != "IncludeUnavailable" || b.Status.Artifact != nil {
						t.Errorf("status: %+v", b.Status)
					}
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("no IncludeUnavailable condition")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}
