package lint

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
	"converge.dev/converge/internal/promotion"
	"converge.dev/converge/internal/reposcan"
)

type adder = func(id, file, obj, format string, a ...any)

// envWord matches a folder, branch or name that is an environment;
// prodWord one that is staging or production.
var (
	envWord  = regexp.MustCompile(`^(dev|development|staging|stage|stg|prod|production|prd|qa|uat)$`)
	prodWord = regexp.MustCompile(`(^|[-_./])(staging|stage|stg|prod|production|prd)($|[-_./])`)
)

func name(o *unstructured.Unstructured) string {
	s := o.GetKind() + " "
	if o.GetNamespace() != "" {
		s += o.GetNamespace() + "/"
	}
	return s + o.GetName()
}

// environmentBranches: Applications and GitRepositories that track a
// branch named for an environment.
func environmentBranches(r *reposcan.Repo, add adder) {
	for _, d := range r.Of("argoproj.io", "Application") {
		rev, _, _ := unstructured.NestedString(d.Obj.Object, "spec", "source", "targetRevision")
		if envWord.MatchString(filepath.Base(rev)) {
			add("CV001", d.File, name(d.Obj), "tracks branch %q as its environment: keep one branch and a folder per environment", rev)
		}
	}
	for _, d := range r.Of("source.toolkit.fluxcd.io", "GitRepository") {
		b, _, _ := unstructured.NestedString(d.Obj.Object, "spec", "ref", "branch")
		if envWord.MatchString(filepath.Base(b)) {
			add("CV001", d.File, name(d.Obj), "tracks branch %q as its environment: keep one branch and a folder per environment", b)
		}
	}
}

// plaintextSecrets: Secrets with data that SOPS did not encrypt.
func plaintextSecrets(r *reposcan.Repo, add adder) {
	for _, d := range r.Of("", "Secret") {
		if _, sops := d.Obj.Object["sops"]; sops {
			continue
		}
		data, _, _ := unstructured.NestedMap(d.Obj.Object, "data")
		str, _, _ := unstructured.NestedMap(d.Obj.Object, "stringData")
		if len(data)+len(str) > 0 {
			add("CV004", d.File, name(d.Obj), "holds %d value(s) in plain text: encrypt it with SOPS or use a secret store", len(data)+len(str))
		}
	}
}

// codeOwners: every production folder is covered by a CODEOWNERS entry.
func codeOwners(r *reposcan.Repo, add adder) {
	seen := map[string]bool{}
	var dirs []string
	for _, f := range append(r.KustomizeDirs, files(r)...) {
		parts := strings.Split(f, "/")
		for i, p := range parts {
			if p == "prod" || p == "production" || p == "prd" {
				dir := strings.Join(parts[:i+1], "/")
				if !seen[dir] {
					seen[dir] = true
					dirs = append(dirs, dir)
				}
				break
			}
		}
	}
	patterns := ownerPatterns(r.CodeOwnersText)
	for _, dir := range dirs {
		switch {
		case r.CodeOwners == "":
			add("CV005", dir, "", "production path with no CODEOWNERS file in the repository: nobody's review is required")
		case !covered(patterns, dir):
			add("CV005", dir, "", "production path no entry of %s covers", r.CodeOwners)
		}
	}
}

func files(r *reposcan.Repo) []string {
	var out []string
	for _, d := range r.Docs {
		out = append(out, filepath.ToSlash(filepath.Dir(d.File)))
	}
	return out
}

// ownerPatterns are the patterns of CODEOWNERS lines that name owners.
func ownerPatterns(text string) []string {
	out := []string{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") {
			out = append(out, f[0])
		}
	}
	return out
}

// covered says whether a CODEOWNERS pattern covers folder dir, as Git
// reads the patterns: "/a/b" from the root, "b" at any depth, "*" all.
// A pattern covers the folder when it matches the folder, a parent, or
// a file in it.
func covered(patterns []string, dir string) bool {
	parts := strings.Split(dir, "/")
	var paths [][]string
	for end := 1; end <= len(parts); end++ {
		paths = append(paths, parts[:end])
	}
	paths = append(paths, append(append([]string{}, parts...), "kustomization.yaml"))
	for _, p := range patterns {
		if p == "*" || p == "**" {
			return true
		}
		anchored := strings.HasPrefix(p, "/") || strings.Contains(strings.Trim(p, "/"), "/")
		re := globRE(strings.Trim(p, "/"))
		for _, path := range paths {
			last := 0
			if !anchored {
				last = len(path) - 1
			}
			for s := 0; s <= last; s++ {
				if re.MatchString(strings.Join(path[s:], "/")) {
					return true
				}
			}
		}
	}
	return false
}

// pruneOnRoot: an Application whose folder holds Applications, with
// automated prune.
func pruneOnRoot(r *reposcan.Repo, add adder) {
	for _, d := range r.Of("argoproj.io", "Application") {
		app, ok := reposcan.Application(d)
		if !ok || app.Spec.Source == nil || app.Spec.SyncPolicy == nil || app.Spec.SyncPolicy.Automated == nil || !app.Spec.SyncPolicy.Automated.Prune {
			continue
		}
		dir := strings.Trim(filepath.ToSlash(filepath.Clean(app.Spec.Source.Path)), "/")
		children := 0
		for _, c := range r.Of("argoproj.io", "Application") {
			if dir != "" && dir != "." && strings.HasPrefix(c.File, dir+"/") {
				children++
			}
		}
		if children > 0 {
			add("CV007", d.File, name(d.Obj), "is the root of %d Application(s) in %s and prunes: moving a file deletes an application; turn prune off on the root", children, dir)
		}
	}
}

// appSetPreserve: ApplicationSets that would delete what they generated.
func appSetPreserve(r *reposcan.Repo, add adder) {
	for _, d := range r.Of("argoproj.io", "ApplicationSet") {
		if keep, _, _ := unstructured.NestedBool(d.Obj.Object, "spec", "syncPolicy", "preserveResourcesOnDeletion"); !keep {
			add("CV008", d.File, name(d.Obj), "has no syncPolicy.preserveResourcesOnDeletion: true: deleting it, or a generator losing an entry, deletes the workloads")
		}
	}
}

// selfHeal: Applications that self-heal in a repository with no
// DriftPolicy.
func selfHeal(r *reposcan.Repo, add adder) {
	if len(r.Of("converge.dev", "DriftPolicy")) > 0 {
		return
	}
	for _, d := range r.Of("argoproj.io", "Application") {
		if heal, _, _ := unstructured.NestedBool(d.Obj.Object, "spec", "syncPolicy", "automated", "selfHeal"); heal {
			add("CV009", d.File, name(d.Obj), "self-heals with no DriftPolicy in the repository: an emergency fix is reverted as fast as any drift")
		}
	}
}

// hpaReplicas: a workload an HPA scales whose manifest sets replicas,
// with no Application ignoring them and no DriftPolicy about them.
func hpaReplicas(r *reposcan.Repo, add adder) {
	for _, p := range r.Of("converge.dev", "DriftPolicy") {
		if strings.Contains(fmt.Sprint(p.Obj.Object["spec"]), "replicas") {
			return
		}
	}
	ignored := map[string]bool{}
	for _, d := range r.Of("argoproj.io", "Application") {
		if app, ok := reposcan.Application(d); ok {
			for _, ig := range app.Spec.IgnoreDifferences {
				if strings.Contains(strings.Join(ig.JSONPointers, " ")+strings.Join(ig.JQPathExpressions, " "), "replicas") {
					ignored[ig.Kind] = true
				}
			}
		}
	}
	for _, h := range r.Of("autoscaling", "HorizontalPodAutoscaler") {
		kind, _, _ := unstructured.NestedString(h.Obj.Object, "spec", "scaleTargetRef", "kind")
		target, _, _ := unstructured.NestedString(h.Obj.Object, "spec", "scaleTargetRef", "name")
		if ignored[kind] {
			continue
		}
		for _, d := range r.Docs {
			if d.Obj.GetKind() != kind || d.Obj.GetName() != target {
				continue
			}
			if _, set, _ := unstructured.NestedFieldNoCopy(d.Obj.Object, "spec", "replicas"); set {
				add("CV010", d.File, name(d.Obj), "sets spec.replicas while HorizontalPodAutoscaler %s scales it: drop replicas, or ignore /spec/replicas", h.Obj.GetName())
			}
		}
	}
}

// rendered checks what units render: images and sync waves. Without a
// renderer it checks the manifests as written, each folder a unit.
func rendered(ctx context.Context, r *reposcan.Repo, render func(context.Context, engine.Unit) ([]object.Decoded, error), add adder) error {
	type batch struct {
		file string
		prod bool
		objs []*unstructured.Unstructured
	}
	var batches []batch
	if render == nil {
		byDir := map[string]*batch{}
		for _, d := range r.Docs {
			dir := filepath.ToSlash(filepath.Dir(d.File))
			b, ok := byDir[dir]
			if !ok {
				b = &batch{file: dir, prod: prodWord.MatchString(dir)}
				byDir[dir] = b
			}
			b.objs = append(b.objs, d.Obj)
		}
		for _, b := range byDir {
			batches = append(batches, *b)
		}
	} else {
		for _, u := range r.Units() {
			objs, err := render(ctx, u.Unit)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				add("CV000", u.File, "", "%s does not render, so its images and sync waves were not checked: %v", u.Path, err)
				continue
			}
			prod := prodWord.MatchString(u.Path) || prodWord.MatchString(u.Name) || prodWord.MatchString(u.DestNamespace)
			b := batch{file: u.File, prod: prod}
			for _, o := range objs {
				b.objs = append(b.objs, o.Object)
			}
			batches = append(batches, b)
		}
	}
	for _, b := range batches {
		waves := 0
		for _, o := range b.objs {
			if _, ok := o.GetAnnotations()[plan.WaveAnnotation]; ok {
				waves++
			}
			images(o, b.file, b.prod, add)
		}
		if n := len(b.objs); n >= 5 && waves*5 >= n*4 {
			add("CV006", b.file, "", "%d of %d objects carry argocd.argoproj.io/sync-wave: order only what must be ordered", waves, n)
		}
	}
	return nil
}

// images checks the images of a workload's pod spec.
func images(o *unstructured.Unstructured, file string, prod bool, add adder) {
	spec := promotion.PodSpec(o)
	if spec == nil {
		return
	}
	for _, key := range []string{"initContainers", "containers"} {
		list, _ := spec[key].([]any)
		for _, c := range list {
			cm, _ := c.(map[string]any)
			ref, _ := cm["image"].(string)
			im, err := promotion.ParseImage(ref)
			switch {
			case err != nil:
				continue
			case im.Digest == "" && (im.Tag == "" || im.Tag == "latest"):
				add("CV002", file, name(o), "container %v runs %q, which floats: pin a version and a digest", cm["name"], ref)
			case im.Digest == "" && prod:
				add("CV003", file, name(o), "container %v runs %q in staging or production: pin it as %s@sha256:...", cm["name"], ref, ref)
			}
		}
	}
}
