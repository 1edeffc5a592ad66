// Package bootstrap makes a cluster reconcile itself from Git, as flux
// bootstrap does: it commits converge's install manifests and a root
// unit (a GitRepository and a Kustomization named converge-system, which
// applies the cluster's folder, itself and converge included) to a
// repository, then applies the same to the cluster. Bootstrapping a new
// cluster from the same repository and folder commits nothing and
// converges it to the same objects.
package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/install"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
	"converge.dev/converge/internal/source/git"
	"converge.dev/converge/internal/writeback"
)

// Name is the root unit's, its source's and its Secret's name, in
// install.Namespace.
const Name = "converge-system"

// Unit is the root unit's owner id, as its Kustomization writes it.
var Unit = flux.UnitName(&kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Namespace: install.Namespace, Name: Name}})

// Options say what to bootstrap.
type Options struct {
	// RepoURL is the repository; it must have a commit on Branch.
	RepoURL string
	// Branch is the branch the cluster follows; "" is the remote's
	// default.
	Branch string
	// Path is the cluster's folder in the repository (clusters/prod).
	Path string
	// Auth pushes the commit. With Secret set, the cluster's
	// GitRepository reads the repository with it too, from a Secret
	// that bootstrap makes in the cluster and never writes to Git.
	Auth   git.Auth
	Secret bool
	// Image is the controller's image.
	Image string
	// Interval is how often the root unit fetches; 0 is 1 minute.
	Interval time.Duration
}

// Result is what bootstrap did.
type Result struct {
	// Commit is the commit the cluster follows; Committed says whether
	// bootstrap made it (false: the repository held it already).
	Commit    string       `json:"commit"`
	Committed bool         `json:"committed"`
	Files     []string     `json:"files"`
	Applied   []object.Ref `json:"applied"`
}

// Files are the manifests bootstrap writes, by path in the repository.
func Files(o Options) (map[string][]byte, error) {
	if o.Path == "" || strings.HasPrefix(o.Path, "/") || strings.Contains(o.Path, "..") {
		return nil, fmt.Errorf("--path %q: want a folder of the repository, such as clusters/prod", o.Path)
	}
	objs, err := install.Manifests(o.Image)
	if err != nil {
		return nil, err
	}
	var inst bytes.Buffer
	inst.WriteString("# converge's CRDs, RBAC and controller, written by converge bootstrap.\n")
	for _, d := range objs {
		if err := writeDoc(&inst, d.Object.Object); err != nil {
			return nil, err
		}
	}
	var sync bytes.Buffer
	sync.WriteString("# The root unit: this cluster follows " + o.Path + " of this repository, converge included.\n")
	for _, m := range syncObjects(o) {
		if err := writeDoc(&sync, m); err != nil {
			return nil, err
		}
	}
	dir := filepath.ToSlash(filepath.Join(o.Path, Name))
	return map[string][]byte{dir + "/install.yaml": inst.Bytes(), dir + "/sync.yaml": sync.Bytes()}, nil
}

func writeDoc(b *bytes.Buffer, m map[string]any) error {
	data, err := yaml.Marshal(m)
	if err != nil {
		return err
	}
	b.WriteString("---\n")
	b.Write(data)
	return nil
}

// syncObjects are the root unit's GitRepository and Kustomization.
func syncObjects(o Options) []map[string]any {
	interval := o.Interval
	if interval == 0 {
		interval = time.Minute
	}
	src := map[string]any{"url": o.RepoURL, "interval": interval.String()}
	if o.Branch != "" {
		src["ref"] = map[string]any{"branch": o.Branch}
	}
	if o.Secret {
		src["secretRef"] = map[string]any{"name": Name}
	}
	meta := map[string]any{"name": Name, "namespace": install.Namespace}
	return []map[string]any{
		{"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": meta, "spec": src},
		{"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": meta, "spec": map[string]any{
			"interval": "10m0s", "path": "./" + strings.Trim(o.Path, "/"), "prune": true,
			"sourceRef": map[string]any{"kind": "GitRepository", "name": Name}}},
	}
}

// Run commits the manifests (if the repository lacks them) and applies
// them to the cluster c.
func Run(ctx context.Context, c *cluster.Client, o Options) (Result, error) {
	files, err := Files(o)
	if err != nil {
		return Result{}, err
	}
	co, err := writeback.Clone(ctx, o.RepoURL, o.Branch, o.Auth)
	if err != nil {
		return Result{}, fmt.Errorf("bootstrap: %w (the branch needs a first commit)", err)
	}
	defer co.Close()
	if o.Branch == "" {
		o.Branch = co.Branch
		if files, err = Files(o); err != nil {
			return Result{}, err
		}
	}
	res := Result{Commit: co.Commit}
	for _, path := range sortedKeys(files) {
		data := files[path]
		res.Files = append(res.Files, path)
		full := filepath.Join(co.Dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return res, err
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			return res, err
		}
	}
	head, err := co.CommitAll(fmt.Sprintf("converge bootstrap: %s follows %s", o.Path, o.Branch), "converge", "converge@converge.dev")
	switch {
	case errors.Is(err, writeback.ErrNothingChanged):
	case err != nil:
		return res, err
	default:
		if err := co.PushBase(ctx); err != nil {
			return res, fmt.Errorf("bootstrap: %w", err)
		}
		res.Commit, res.Committed = head, true
	}
	// The cluster gets what the repository now holds: the install first
	// (CRDs established), then the credentials, then the root unit.
	objs, err := install.Manifests(o.Image)
	if err != nil {
		return res, err
	}
	// They carry the root unit's ownership, as its own applies will: it
	// takes them over without a second, refused, owner.
	owned := func(u *unstructured.Unstructured) {
		a := u.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		a[plan.OwnerAnnotation] = Unit
		u.SetAnnotations(a)
	}
	for _, d := range objs {
		owned(d.Object)
	}
	if res.Applied, err = install.Apply(ctx, c, objs); err != nil {
		return res, fmt.Errorf("bootstrap: install: %w", err)
	}
	if o.Secret {
		sec := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Name: Name, Namespace: install.Namespace},
			StringData: map[string]string{"username": o.Auth.Username, "password": o.Auth.Password, "bearerToken": o.Auth.BearerToken}}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(sec)
		if err != nil {
			return res, err
		}
		if _, err := c.Apply(ctx, &unstructured.Unstructured{Object: m}, cluster.ApplyOptions{Force: true}); err != nil {
			return res, fmt.Errorf("bootstrap: Secret %s/%s: %w", install.Namespace, Name, err)
		}
		res.Applied = append(res.Applied, object.Ref{Version: "v1", Kind: "Secret", Namespace: install.Namespace, Name: Name})
	}
	for _, m := range syncObjects(o) {
		u := &unstructured.Unstructured{Object: m}
		owned(u)
		if _, err := c.Apply(ctx, u, cluster.ApplyOptions{Force: true}); err != nil {
			return res, fmt.Errorf("bootstrap: %s: %w", object.RefOf(u), err)
		}
		res.Applied = append(res.Applied, object.RefOf(u))
	}
	return res, nil
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
