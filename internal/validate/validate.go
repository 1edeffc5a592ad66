// Package validate checks a repository before merge, offline (the
// seed's §13: "generated manifests are validated in CI; policy checks run
// before merge"). It renders every unit the repository deploys, checks
// each object against the OpenAPI schemas of a Kubernetes version (the
// ones converge ships, or a cluster's) and against the CRDs the
// repository holds, and runs the repository's ValidatingAdmissionPolicies
// on them. Each problem names the file, the document and the field.
package validate

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/install"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/reposcan"
)

// Problem kinds.
const (
	ProblemRender  = "render"
	ProblemSchema  = "schema"
	ProblemUnknown = "unknown-kind"
	ProblemPolicy  = "policy"
)

// Problem is one thing wrong, where it is written.
type Problem struct {
	Kind string `json:"kind"`
	// Severity is error, or warning (a policy's Warn action, a kind with
	// no schema).
	Severity string `json:"severity"`
	File     string `json:"file"`
	// Document counts from 1 in File; 0 when the problem is the file's.
	Document int    `json:"document,omitempty"`
	Object   string `json:"object,omitempty"`
	Field    string `json:"field,omitempty"`
	Message  string `json:"message"`
}

func (p Problem) String() string {
	where := p.File
	if p.Document > 0 {
		where += fmt.Sprintf(": document %d", p.Document)
	}
	if p.Object != "" {
		where += ": " + p.Object
	}
	if p.Field != "" {
		where += ": " + p.Field
	}
	return where + ": " + p.Message
}

// Options shape a run.
type Options struct {
	// Schemas are the built-in kinds' schemas (Builtin, or a cluster's);
	// the repository's CRDs and converge's own are added to them.
	// Required.
	Schemas *Schemas
	// Render renders a unit offline. Required.
	Render func(ctx context.Context, u engine.Unit) ([]object.Decoded, error)
}

// Report is a run's result.
type Report struct {
	Schemas  string    `json:"schemas"`
	Units    int       `json:"units"`
	Objects  int       `json:"objects"`
	Policies int       `json:"policies"`
	Problems []Problem `json:"problems"`
}

// Errors counts the problems of severity error.
func (r Report) Errors() int {
	n := 0
	for _, p := range r.Problems {
		if p.Severity == "error" {
			n++
		}
	}
	return n
}

// Run validates the repository checked out at root.
func Run(ctx context.Context, root string, o Options) (Report, error) {
	repo, err := reposcan.Scan(root)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Schemas: o.Schemas.Source, Problems: []Problem{}}
	absRoot, _ := filepath.Abs(root)
	crds, err := install.CRDs()
	if err != nil {
		return rep, err
	}
	for _, c := range crds {
		if err := o.Schemas.AddCRD(c.Object); err != nil {
			return rep, err
		}
	}
	// The objects to check: every unit's render, and the manifests that
	// no unit renders (a kustomize folder's files are its inputs, patches
	// among them, not objects).
	var items []located
	inputs := map[string]bool{}
	for _, d := range repo.KustomizeDirs {
		inputs[d] = true
	}
	for _, d := range repo.Docs {
		if !inside(d.File, inputs) {
			items = append(items, located{obj: d.Obj, file: d.File, document: d.Document})
		}
	}
	for _, u := range repo.Units() {
		rep.Units++
		objs, err := o.Render(ctx, u.Unit)
		if err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			// Paths from the repository's root, not this machine's.
			msg := strings.ReplaceAll(err.Error(), filepath.Clean(absRoot)+string(filepath.Separator), "")
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemRender, Severity: "error", File: u.File, Message: msg})
			continue
		}
		for _, d := range objs {
			it := located{obj: d.Object, file: d.Source.File, document: d.Source.Document}
			if it.file == "" {
				it.file = u.Path
			}
			// kustomize names the kustomization as the source: the file
			// that writes the object is more use to whoever fixes it.
			if w, ok := writtenIn(repo, u.Path, d.Object); ok && strings.HasSuffix(filepath.Base(it.file), "ustomization.yaml") {
				it.file, it.document = w.File, w.Document
			}
			items = append(items, it)
		}
	}
	// CRDs first: an object may be of a kind the repository defines.
	for _, it := range items {
		if it.obj.GetKind() == "CustomResourceDefinition" && it.obj.GroupVersionKind().Group == "apiextensions.k8s.io" {
			if err := o.Schemas.AddCRD(it.obj); err != nil {
				rep.Problems = append(rep.Problems, Problem{Kind: ProblemSchema, Severity: "error", File: it.file, Document: it.document, Message: err.Error()})
			}
		}
	}
	policies, problems := loadPolicies(items)
	rep.Problems = append(rep.Problems, problems...)
	rep.Policies = len(policies)
	seen := map[string]bool{}
	for _, it := range items {
		rep.Objects++
		name := it.obj.GetKind() + " " + strings.TrimPrefix(it.obj.GetNamespace()+"/"+it.obj.GetName(), "/")
		add := func(p Problem) {
			p.File, p.Document, p.Object = it.file, it.document, name
			if key := p.String(); !seen[key] {
				seen[key] = true
				rep.Problems = append(rep.Problems, p)
			}
		}
		errs, known := o.Schemas.Validate(it.obj)
		if !known {
			add(Problem{Kind: ProblemUnknown, Severity: "warning", Message: fmt.Sprintf("no schema for %s: it is not a kind of %s, and no CRD in the repository defines it",
				it.obj.GroupVersionKind(), o.Schemas.Source)})
		}
		for _, e := range errs {
			add(Problem{Kind: ProblemSchema, Severity: "error", Field: e.Field, Message: e.Message})
		}
		for _, p := range policies {
			for _, v := range p.evaluate(it.obj) {
				add(v)
			}
		}
	}
	sort.SliceStable(rep.Problems, func(i, j int) bool {
		a, b := rep.Problems[i], rep.Problems[j]
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Document < b.Document
	})
	return rep, nil
}

// inside says whether file is in one of dirs.
func inside(file string, dirs map[string]bool) bool {
	for dir := filepath.ToSlash(filepath.Dir(file)); ; dir = filepath.ToSlash(filepath.Dir(dir)) {
		if dirs[dir] {
			return true
		}
		if dir == "." || dir == "/" || dir == "" {
			return false
		}
	}
}

// located is an object and where it is written.
type located struct {
	obj      *unstructured.Unstructured
	file     string
	document int
}

// writtenIn is the manifest in the repository that writes obj (same kind
// and name) nearest to the unit's folder, if there is one.
func writtenIn(repo *reposcan.Repo, unitPath string, obj *unstructured.Unstructured) (reposcan.Doc, bool) {
	var best reposcan.Doc
	score := -1
	for _, d := range repo.Docs {
		if d.Obj.GetKind() != obj.GetKind() || d.Obj.GetName() != obj.GetName() {
			continue
		}
		if n := commonPrefix(d.File, unitPath); n > score {
			best, score = d, n
		}
	}
	return best, score >= 0
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}
