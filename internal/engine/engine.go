// Package engine holds the use cases that the CLI, the controller and
// `converge up` share: render a unit from a source revision, diff it
// against the cluster, sync it, and report its status. It wires source,
// render, plan, apply and cluster together and owns no logic of theirs.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"

	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/diff"
	"converge.dev/converge/internal/drift"
	"converge.dev/converge/internal/health"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/render"
	"converge.dev/converge/internal/render/helm"
	"converge.dev/converge/internal/render/kustomize"
	"converge.dev/converge/internal/source"
	"converge.dev/converge/internal/source/git"
	"converge.dev/converge/internal/source/oci"
)

// Unit is one unit of desired state: a folder of a repository at a
// revision, destined for one cluster.
type Unit struct {
	// Name identifies the unit; it is written on every object it applies
	// and names its inventory. Required for diff, sync and status.
	Name string
	// RepoURL is the Git repository (https, ssh or file://).
	RepoURL string
	// Revision is a branch, tag, commit, "semver:<range>" or "" for HEAD;
	// see source.ParseRevision.
	Revision string
	// Path is the folder inside the repository. Empty is the root.
	Path string
	// DestNamespace is given to namespaced objects that name none. If
	// empty, "default".
	DestNamespace string
	// Render configures rendering.
	Render RenderOptions
	// Auth are the repository's credentials.
	Auth git.Auth
	// Includes are other repositories' folders copied into the source
	// before rendering, in order (Git sources only).
	Includes []Include
	// OCI configures an oci:// source: credentials, plain HTTP, and the
	// media type of the content layer (empty: the first layer).
	OCIAuth      oci.Auth
	OCIMediaType string
	// Ignore lists differences that do not count (ignoreDifferences).
	Ignore []diff.Ignore
	// Decryption opens SOPS-encrypted objects. If nil, an encrypted
	// object is an error.
	Decryption *Decryption
	// Overlay transforms the rendered objects (Flux's namePrefix,
	// commonMetadata, images, patches). The zero Overlay changes nothing.
	Overlay kustomize.Overlay
	// Substitute, if not nil, holds variables replaced in every rendered
	// object (Flux's postBuild); nil turns substitution off.
	Substitute map[string]string
	// Drift decides which drifted fields the unit takes back and which it
	// leaves to the manager that holds them. The zero Policy reports all
	// and takes them back on sync, except an HPA's replicas.
	Drift drift.Policy
	// RespectIgnoreDifferences applies live values for ignored fields, so
	// a sync never changes a field another owner manages (an HPA's
	// replicas). If false, ignored fields are only left out of diffs.
	RespectIgnoreDifferences bool
}

// RenderOptions configure how a unit's folder is rendered.
type RenderOptions struct {
	// Kind forces a renderer. If empty, render.Detect picks one.
	Kind render.Kind `json:"kind,omitempty"`
	// Recurse reads sub-folders of a plain directory.
	Recurse bool `json:"recurse,omitempty"`
	// KustomizeSubfolders builds a sub-folder of a plain directory that
	// holds a kustomization file with kustomize, instead of reading its
	// files as manifests, as Flux does.
	KustomizeSubfolders bool `json:"kustomizeSubfolders,omitempty"`
	// Include and Exclude are globs a plain directory's files are
	// matched against (Argo CD's directory.include and exclude).
	Include string `json:"include,omitempty"`
	Exclude string `json:"exclude,omitempty"`
	// Jsonnet, if set, evaluates a plain directory's .jsonnet files, as
	// Argo CD does; Flux units leave it nil and read YAML only.
	// ARGOCD_APP_REVISION and ARGOCD_APP_REVISION_SHORT are added to its
	// Env at render time.
	Jsonnet *render.JsonnetOptions `json:"jsonnet,omitempty"`
	// AllowRemoteBases lets kustomize fetch remote bases itself.
	AllowRemoteBases bool `json:"allowRemoteBases,omitempty"`
	// Ignore holds gitignore-style patterns of files a plain folder
	// render leaves out (Flux's GitRepository spec.ignore).
	Ignore []string `json:"ignore,omitempty"`
	// Components are kustomize components added to the folder's
	// kustomization (Flux's spec.components); a plain folder is built as
	// a kustomization of its manifests.
	Components []string `json:"components,omitempty"`
	// SourceIgnore also reads .sourceignore at the repository root, as
	// Flux does for its sources.
	SourceIgnore bool `json:"sourceIgnore,omitempty"`
	// HelmReleaseName, HelmValueFiles and HelmValues configure Helm.
	HelmReleaseName string         `json:"helmReleaseName,omitempty"`
	HelmValueFiles  []string       `json:"helmValueFiles,omitempty"`
	HelmValues      map[string]any `json:"helmValues,omitempty"`
}

// Options configure an Engine.
type Options struct {
	// Fetcher fetches Git sources. Required.
	Fetcher *git.Fetcher
	// OCI fetches oci:// sources. If nil, a unit on an OCI source is an
	// error.
	OCI *oci.Fetcher
	// Cluster is the target. Required for everything but Render.
	Cluster *cluster.Client
	// Inventory keeps the units' inventories. If nil, Cluster. An engine
	// that impersonates a tenant keeps them with the controller's own
	// client: the inventory is converge's record, not the tenant's, and
	// the tenant needs no rights in converge's namespace.
	Inventory *cluster.Client
	// KubeVersion is passed to Helm when there is no Cluster to ask.
	KubeVersion string
	// Health holds custom health rules (CEL, Lua) in front of the
	// built-in ones. If nil, only the built-in rules apply.
	Health *health.Rules
	// ComposeDir holds sources composed from includes. If empty, a
	// folder under os.TempDir().
	ComposeDir string
	// MaxObjects bounds how many objects one unit may render. Zero
	// means 10,000; a render over it is an error naming the unit.
	MaxObjects int
	// MaxBytes bounds the size of one unit's rendered objects, as JSON.
	// Zero means 64 MiB.
	MaxBytes int64
	// HelmChild renders Helm charts in a child process with a memory
	// limit. If nil, charts render in this process, unbounded.
	HelmChild *helm.Child
	// Live, if set, says which version of each object Cluster holds, from
	// the caller's watches; see LiveIndex. If nil, every comparison reads
	// the unit's objects.
	Live LiveIndex
}

// ErrRenderTooLarge is a render over Options.MaxObjects or MaxBytes.
var ErrRenderTooLarge = errors.New("render is over the unit size limit")

// checkSize refuses a render over the engine's limits: a unit that
// large would be diffed, dry-run and held in memory at every resync.
func (e *Engine) checkSize(objs []object.Decoded) error {
	maxObjects, maxBytes := e.o.MaxObjects, e.o.MaxBytes
	if maxObjects == 0 {
		maxObjects = 10000
	}
	if maxBytes == 0 {
		maxBytes = 64 << 20
	}
	if len(objs) > maxObjects {
		return fmt.Errorf("%w: %d objects, limit %d", ErrRenderTooLarge, len(objs), maxObjects)
	}
	var total int64
	for _, d := range objs {
		data, err := d.Object.MarshalJSON()
		if err != nil {
			return fmt.Errorf("%s: %w", d.Source, err)
		}
		if total += int64(len(data)); total > maxBytes {
			return fmt.Errorf("%w: more than %d bytes (at %s)", ErrRenderTooLarge, maxBytes, d.Source)
		}
	}
	return nil
}

// Engine runs units. It is safe for concurrent use.
type Engine struct {
	o Options

	mu      sync.Mutex
	renders map[string][]object.Decoded

	predictions predictionCache
	inventories inventoryMemo
	seen        seenObjects
	// claims are shared by every engine on the same cluster (an
	// impersonating engine's refusals concern the owner's status too).
	claims *claims
}

// New returns an Engine.
func New(o Options) *Engine {
	return &Engine{o: o, renders: map[string][]object.Decoded{}, claims: &claims{},
		predictions: predictionCache{newGenerations[string, prediction](predictionGeneration)},
		seen:        seenObjects{newGenerations[object.Key, seenCopy](seenGeneration)}}
}

// Rendered is a unit rendered at one revision.
type Rendered struct {
	Revision string
	Objects  []object.Decoded
}

// Render fetches the unit's revision and renders its folder. Renders are
// cached by (revision, path, options): a revision never changes.
func (e *Engine) Render(ctx context.Context, u Unit) (Rendered, error) {
	snap, err := e.fetch(ctx, u)
	if err != nil {
		return Rendered{}, err
	}
	// The folder is part of the key: a composed source (includes) has
	// the main commit as revision but a folder per included revision.
	key, _ := json.Marshal(struct {
		Rev, Dir, Path, NS string
		O                  RenderOptions
	}{snap.Revision, snap.Dir, u.Path, u.DestNamespace, u.Render})
	e.mu.Lock()
	cached, ok := e.renders[string(key)]
	e.mu.Unlock()
	if ok {
		return Rendered{Revision: snap.Revision, Objects: cached}, nil
	}
	objs, err := e.render(ctx, snap, u)
	if err == nil {
		err = e.checkSize(objs)
	}
	if err != nil {
		return Rendered{}, fmt.Errorf("render %s at %.12s: %w", u.Path, snap.Revision, err)
	}
	e.mu.Lock()
	if len(e.renders) > 256 { // bounded: drop everything rather than track age
		e.renders = map[string][]object.Decoded{}
	}
	e.renders[string(key)] = objs
	e.mu.Unlock()
	return Rendered{Revision: snap.Revision, Objects: objs}, nil
}

// renderCheckout renders the unit's folder from a local checkout of its
// repository at root, as a sync of revision would: a backport checks its
// change this way before pushing it.
func (e *Engine) renderCheckout(ctx context.Context, u Unit, root, revision string) ([]object.Decoded, error) {
	return e.render(ctx, source.Snapshot{Revision: revision, Dir: root}, u)
}

// RenderLocal renders the unit's folder from a checkout at root, offline,
// as a sync would render it: for checks before a merge (lint, validate).
func (e *Engine) RenderLocal(ctx context.Context, u Unit, root string) ([]object.Decoded, error) {
	objs, err := e.render(ctx, source.Snapshot{Revision: "local", Dir: root}, u)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", u.Path, err)
	}
	return objs, nil
}

// renderKind is the renderer of the unit's folder dir: the one it names,
// or the detected one; a plain folder with components is built by
// kustomize, as Flux does.
func renderKind(u Unit, dir string) render.Kind {
	kind := u.Render.Kind
	if kind == "" {
		kind = render.Detect(dir)
	}
	if len(u.Render.Components) > 0 && kind == render.Directory {
		kind = render.Kustomize
	}
	return kind
}

// ErrNotFolder is a unit path that is not a folder of the repository.
var ErrNotFolder = errors.New("not a folder in the repository")

func (e *Engine) render(ctx context.Context, snap source.Snapshot, u Unit) ([]object.Decoded, error) {
	dir, err := render.Join(snap.Dir, u.Path)
	if err != nil {
		return nil, err
	}
	if render.Detect(dir) == render.Directory && !isDir(dir) {
		return nil, fmt.Errorf("%q: %w", u.Path, ErrNotFolder)
	}
	kind := renderKind(u, dir)
	switch kind {
	case render.Directory:
		patterns := u.Render.Ignore
		if u.Render.SourceIgnore {
			// Flux reads .sourceignore at the repository root, and the
			// spec's patterns after it.
			if data, err := os.ReadFile(filepath.Join(snap.Dir, ".sourceignore")); err == nil {
				patterns = append(strings.Split(string(data), "\n"), patterns...)
			}
		}
		do := render.DirectoryOptions{Recurse: u.Render.Recurse, IncludeGlob: u.Render.Include, ExcludeGlob: u.Render.Exclude}
		if len(patterns) > 0 {
			do.Exclude = excluder(patterns)
		}
		if u.Render.KustomizeSubfolders {
			do.Subfolder = func(sub string) ([]object.Decoded, error) {
				return kustomize.Render(snap.Dir, sub, kustomize.Options{AllowRemoteBases: u.Render.AllowRemoteBases})
			}
		}
		if j := u.Render.Jsonnet; j != nil {
			jo := *j
			jo.Env = map[string]string{"ARGOCD_APP_REVISION": snap.Revision, "ARGOCD_APP_REVISION_SHORT": short(snap.Revision, 7), "ARGOCD_APP_REVISION_SHORT_8": short(snap.Revision, 8)}
			for k, v := range j.Env {
				jo.Env[k] = v
			}
			do.Jsonnet = &jo
			// Jsonnet can build values of any size: it runs in the render
			// child, under its memory limit and timeout, when there is one.
			// A folder without a .jsonnet file (most of an Argo CD fleet's)
			// renders in process: starting a child for each was most of an
			// Application's first sync, 200 of them at 2.2 times the time
			// of as many Kustomizations.
			if e.o.HelmChild != nil && do.Exclude == nil && do.Subfolder == nil && render.HasJsonnet(dir, do.Recurse) {
				return e.o.HelmChild.RenderDirectory(ctx, snap.Dir, dir, do)
			}
		}
		return render.RenderDirectory(snap.Dir, dir, do)
	case render.Kustomize:
		return kustomize.Render(snap.Dir, dir, kustomize.Options{AllowRemoteBases: u.Render.AllowRemoteBases, Components: u.Render.Components})
	case render.Helm:
		kv := e.o.KubeVersion
		if e.o.Cluster != nil {
			if v, err := e.o.Cluster.ServerVersion(ctx); err == nil {
				kv = v
			}
		}
		name := u.Render.HelmReleaseName
		if name == "" {
			name = filepath.Base(dir)
		}
		ho := helm.Options{
			ReleaseName: name, Namespace: u.DestNamespace, ValueFiles: u.Render.HelmValueFiles,
			Values: u.Render.HelmValues, KubeVersion: kv,
		}
		if e.o.HelmChild != nil {
			return e.o.HelmChild.Render(ctx, snap.Dir, dir, ho)
		}
		return helm.Render(snap.Dir, dir, ho)
	}
	return nil, fmt.Errorf("unknown renderer %q (use directory, kustomize or helm)", kind)
}

// short is the first n characters of a commit.
func short(rev string, n int) string {
	if len(rev) > n {
		return rev[:n]
	}
	return rev
}

// HelmChild is the child process Helm renders run in, or nil.
func (e *Engine) HelmChild() *helm.Child { return e.o.HelmChild }

// Forget makes the next render of units on repoURL ask the remote for
// their revision, even within the fetcher's MaxAge.
func (e *Engine) Forget(repoURL string) {
	if e.o.Fetcher != nil {
		e.o.Fetcher.Forget(repoURL)
	}
}

// Resolve fetches a repository at a revision and returns the commit,
// as a source reconciler publishes it. The snapshot stays in the cache
// for the units that render it next.
func (e *Engine) Resolve(ctx context.Context, repoURL, revision string, auth git.Auth) (string, error) {
	snap, err := e.o.Fetcher.Fetch(ctx, repoURL, source.ParseRevision(revision), auth)
	if err != nil {
		return "", err
	}
	return snap.Revision, nil
}

// Commit reads a commit's author and message from the Git cache only.
func (e *Engine) Commit(repoURL, sha string) (git.Commit, error) {
	if e.o.Fetcher == nil {
		return git.Commit{}, errors.New("no Git fetcher")
	}
	return e.o.Fetcher.Commit(repoURL, sha)
}

// Snapshot fetches a unit's source at its revision, from Git or a
// registry, for callers that read the folder themselves (Helm charts).
// Snapshots are cached by revision and must not be written to.
func (e *Engine) Snapshot(ctx context.Context, u Unit) (source.Snapshot, error) {
	return e.fetch(ctx, u)
}

// fetch gets a unit's snapshot from Git or, for oci:// URLs, a registry.
func (e *Engine) fetch(ctx context.Context, u Unit) (source.Snapshot, error) {
	if strings.HasPrefix(u.RepoURL, "oci://") {
		if e.o.OCI == nil {
			return source.Snapshot{}, fmt.Errorf("%s: OCI sources are not configured", u.RepoURL)
		}
		return e.o.OCI.Fetch(ctx, u.RepoURL, OCIRef(u.Revision), u.OCIMediaType, u.OCIAuth)
	}
	snap, err := e.o.Fetcher.Fetch(ctx, u.RepoURL, source.ParseRevision(u.Revision), u.Auth)
	if err != nil || len(u.Includes) == 0 {
		return snap, err
	}
	return e.compose(ctx, snap, u.Includes)
}

// OCIRef reads a unit revision for an OCI source: a digest
// ("sha256:..."), "semver:<range>", "tag:<tag>" or a bare tag.
func OCIRef(rev string) oci.Ref {
	switch {
	case strings.HasPrefix(rev, "sha256:"):
		return oci.Ref{Digest: rev}
	case strings.HasPrefix(rev, "semver:"):
		return oci.Ref{SemVer: strings.TrimPrefix(rev, "semver:")}
	}
	return oci.Ref{Tag: strings.TrimPrefix(rev, "tag:")}
}

// ResolveOCI returns the tag and digest an OCI reference points to now.
func (e *Engine) ResolveOCI(ctx context.Context, url string, ref oci.Ref, auth oci.Auth) (tag, digest string, err error) {
	if e.o.OCI == nil {
		return "", "", fmt.Errorf("%s: OCI sources are not configured", url)
	}
	return e.o.OCI.Resolve(ctx, url, ref, auth)
}

// MissingOCI says what of an image digest is gone from its registry;
// see oci.Fetcher.Missing.
func (e *Engine) MissingOCI(ctx context.Context, url, digest string, auth oci.Auth) ([]string, error) {
	if e.o.OCI == nil {
		return nil, fmt.Errorf("%s: OCI sources are not configured", url)
	}
	return e.o.OCI.Missing(ctx, url, digest, auth)
}

// ForCluster returns an Engine for another cluster, sharing this one's
// fetchers and health rules (and so their caches of sources), with its
// own caches of renders, predictions and inventories.
func (e *Engine) ForCluster(c *cluster.Client) *Engine {
	o := e.o
	o.Cluster, o.Inventory = c, nil
	o.Live = nil // it watches this engine's cluster, not c
	return New(o)
}

// Impersonating returns an engine that acts on the same cluster through
// c, a client with other credentials (a tenant's ServiceAccount), and
// keeps inventories with this engine's own client.
func (e *Engine) Impersonating(c *cluster.Client) *Engine {
	o := e.o
	o.Cluster, o.Inventory = c, e.inventoryClient()
	ne := New(o)
	ne.claims = e.claims
	return ne
}

// Watching returns an engine like this one that consults x (see
// LiveIndex), sharing this one's ownership claims.
func (e *Engine) Watching(x LiveIndex) *Engine {
	o := e.o
	o.Live = x
	ne := New(o)
	ne.claims = e.claims
	return ne
}

func (e *Engine) inventoryClient() *cluster.Client {
	if e.o.Inventory != nil {
		return e.o.Inventory
	}
	return e.o.Cluster
}

// excluder matches paths against gitignore-style patterns; nil without
// patterns.
func excluder(patterns []string) func(string, bool) bool {
	var ps []gitignore.Pattern
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		// "./x" names x at the root, as users write it in Flux's ignore;
		// gitignore itself would read "." as a folder name.
		neg, rest := "", p
		if strings.HasPrefix(rest, "!") {
			neg, rest = "!", rest[1:]
		}
		if strings.HasPrefix(rest, "./") {
			p = neg + "/" + strings.TrimLeft(rest[2:], "/")
		}
		ps = append(ps, gitignore.ParsePattern(p, nil))
	}
	if len(ps) == 0 {
		return nil
	}
	m := gitignore.NewMatcher(ps)
	return func(rel string, isDir bool) bool { return m.Match(strings.Split(rel, "/"), isDir) }
}
