package controller

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/source/oci"
)

// pushArtifact pushes files as a Flux-style artifact (one tar+gzip
// layer of the content media type) to ref.
func pushArtifact(t *testing.T, ref string, files map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, content := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
		tw.Write([]byte(content))
	}
	tw.Close()
	gz.Close()
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer(buf.Bytes(), types.MediaType(oci.FluxContentMediaType)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

// TestOCIRepository: a Kustomization applies an artifact from an OCI
// registry served in-process, with a semver range over tags; a newer
// matching tag is picked up.
func TestOCIRepository(t *testing.T) {
	c, _ := setup(t)
	ns := clustertest.Namespace(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	pushArtifact(t, host+"/apps/web:1.0.0", map[string]string{"web/cm.yaml": configMapYAML("from-oci", "1.0.0")})
	pushArtifact(t, host+"/apps/web:2.0.0", map[string]string{"web/cm.yaml": configMapYAML("from-oci", "2.0.0")})

	repo := &sourcev1.OCIRepository{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: sourcev1.OCIRepositorySpec{URL: "oci://" + host + "/apps/web", Insecure: true, Interval: metav1.Duration{Duration: time.Minute},
			Ref:           &sourcev1.OCIRepositoryRef{SemVer: "1.x"},
			LayerSelector: &sourcev1.OCILayerSelector{MediaType: oci.FluxContentMediaType, Operation: "extract"}}}
	create(t, c, repo)
	create(t, c, &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "OCIRepository", Name: "web"},
			Path: "./web", TargetNamespace: ns, Prune: true, Interval: metav1.Duration{Duration: time.Minute}}})
	ks := waitKustomization(t, c, ns, "web", "Ready", func(k *kustomizev1.Kustomization) bool { return isReady(k.Status.Conditions) })
	if v := configMapValue(c, ns, "from-oci"); v != "1.0.0" {
		t.Errorf("value %q, want 1.0.0 (semver 1.x)", v)
	}
	if !strings.HasPrefix(ks.Status.LastAppliedRevision, "1.0.0@sha256:") {
		t.Errorf("lastAppliedRevision %q", ks.Status.LastAppliedRevision)
	}

	// 1.5.0 appears: the source moves, the Kustomization follows at once.
	pushArtifact(t, host+"/apps/web:1.5.0", map[string]string{"web/cm.yaml": configMapYAML("from-oci", "1.5.0")})
	patch := []byte(`{"metadata":{"annotations":{"` + ReconcileRequestAnnotation + `":"now"}}}`)
	if err := c.Patch(context.Background(), repo, rawMerge(patch)); err != nil {
		t.Fatal(err)
	}
	waitKustomization(t, c, ns, "web", "on 1.5.0", func(k *kustomizev1.Kustomization) bool {
		return strings.HasPrefix(k.Status.LastAppliedRevision, "1.5.0@") && configMapValue(c, ns, "from-oci") == "1.5.0"
	})
}
