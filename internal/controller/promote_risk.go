package controller

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/promotion"
)

// change is what a pull request does beyond moving the image, for risk:
// auto: files changed outside the stage's locator and converge's own
// records, and each target's render on the base against its render at
// the head (objects deleted; CRDs, RBAC and Namespaces touched). heads
// are the targets' renders at the head; headDir is the head's checkout.
// bases are the targets rendered at base. Without a base commit nothing
// can be compared, and the change counts as touching everything.
func (run *pipelineRun) change(ctx context.Context, s convergev1.PipelineStage, base, headDir string, bases renders, heads map[convergev1.StageTarget]targetRender) (promotion.Change, error) {
	c := promotion.Change{Clusters: 1}
	if base == "" {
		c.OutsideLocators = []string{"(the pull request's base commit is unknown: nothing could be compared)"}
		return c, nil
	}
	snap, err := run.r.Engine.Snapshot(ctx, engine.Unit{RepoURL: run.p.Spec.Repo.URL, Revision: base, Auth: run.auth})
	if err != nil {
		return c, fmt.Errorf("fetch the base %s: %w", short(base, 12), err)
	}
	changed, err := changedFiles(snap.Dir, headDir)
	if err != nil {
		return c, err
	}
	for _, f := range changed {
		if f != s.Locator.Path && !strings.HasPrefix(f, ".converge/") {
			c.OutsideLocators = append(c.OutsideLocators, f)
		}
	}
	for _, t := range s.Targets {
		head, ok := heads[t]
		if !ok {
			continue // the manifest gate has failed, naming it
		}
		// A target its base cannot render is new: everything it renders
		// is added.
		var before []*unstructured.Unstructured
		if br, ok := bases.by[t]; ok {
			before = objectsOf(br.objects, br.related)
		}
		deletes, sensitive := promotion.Touched(before, objectsOf(head.objects, head.related), head.namespace)
		c.Deletes = append(c.Deletes, deletes...)
		c.Sensitive = append(c.Sensitive, sensitive...)
	}
	return c, nil
}

// objectsOf lists the objects of renders (which the engine caches: they
// are read, never appended to).
func objectsOf(renders ...[]object.Decoded) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, ds := range renders {
		for _, d := range ds {
			out = append(out, d.Object)
		}
	}
	return out
}

// changedFiles lists the files, slash-separated and sorted, that differ
// between two checkouts: added, removed or changed. .git is left out.
func changedFiles(a, b string) ([]string, error) {
	read := func(root string) (map[string]string, error) {
		files := map[string]string{}
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == ".git" {
					return filepath.SkipDir
				}
				return nil
			}
			rel, _ := filepath.Rel(root, path)
			if !d.Type().IsRegular() {
				// A link is compared by where it points, never followed:
				// a pull request may add one to anywhere.
				target, _ := os.Readlink(path)
				files[filepath.ToSlash(rel)] = "\x00link:" + target
				return nil
			}
			files[filepath.ToSlash(rel)] = path
			return nil
		})
		return files, err
	}
	fa, err := read(a)
	if err != nil {
		return nil, fmt.Errorf("read checkout: %w", err)
	}
	fb, err := read(b)
	if err != nil {
		return nil, fmt.Errorf("read checkout: %w", err)
	}
	var out []string
	for f, pa := range fa {
		pb, ok := fb[f]
		if !ok {
			out = append(out, f)
			continue
		}
		same, err := sameFile(pa, pb)
		if err != nil {
			return nil, err
		}
		if !same {
			out = append(out, f)
		}
	}
	for f := range fb {
		if _, ok := fa[f]; !ok {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out, nil
}

func sameFile(a, b string) (bool, error) {
	if strings.HasPrefix(a, "\x00") || strings.HasPrefix(b, "\x00") {
		return a == b, nil
	}
	da, err := os.ReadFile(a)
	if err != nil {
		return false, err
	}
	db, err := os.ReadFile(b)
	if err != nil {
		return false, err
	}
	return bytes.Equal(da, db), nil
}
