package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"

	"converge.dev/converge/internal/backport"
	"converge.dev/converge/internal/drift"
	"converge.dev/converge/internal/forge"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/render"
	"converge.dev/converge/internal/source"
	"converge.dev/converge/internal/writeback"
)

// BackportOptions configure Backport.
type BackportOptions struct {
	// Only picks the drift to write back. If nil, every field no policy
	// allows (reported, reverted or held by an override).
	Only func(drift.Item) bool
	// Branch is where the change is pushed. If empty,
	// converge-backport-UNIT.
	Branch string
	// DryRun writes and checks the change in a clone and pushes nothing.
	DryRun bool
	// Forge opens the pull request. If nil, the Gitea the repository URL
	// points at, with the unit's password or token.
	Forge forge.Forge
}

// BackportResult is what Backport did.
type BackportResult struct {
	Changes []backport.Change
	// Skipped says what was left out and why (a Secret, say).
	Skipped []string
	Files   []string
	// Base is the branch the pull request goes into, Branch its head.
	Base, Branch string
	PR           forge.Opened
}

// ErrNothingToBackport means no drift qualified.
var ErrNothingToBackport = errors.New("nothing to backport")

// Backport makes Git tell the truth again after an emergency change: it
// writes the live values of the unit's drift into a clone of its branch,
// checks that the folder then renders each of them, pushes the change to
// a branch of its own and opens a pull request, or finds the one open.
// Nothing is pushed unless the render matches live.
func (e *Engine) Backport(ctx context.Context, u Unit, o BackportOptions) (BackportResult, error) {
	var res BackportResult
	rev := source.ParseRevision(u.Revision)
	if rev.Tag != "" || rev.SemVer != "" || rev.Commit != "" {
		return res, fmt.Errorf("unit %s: revision %q: a backport is proposed against a branch", u.Name, u.Revision)
	}
	base := rev.Branch
	if base == "" {
		base = rev.Name // a tag of that name fails the clone
	}
	rep, err := e.Diff(ctx, u, SyncOptions{})
	if err != nil {
		return res, err
	}
	rendered, err := e.Render(ctx, u)
	if err != nil {
		return res, err
	}
	var items []drift.Item
	for _, it := range rep.Drift {
		if o.Only == nil || o.Only(it) {
			items = append(items, it)
		}
	}
	if res.Changes, res.Skipped, err = backportChanges(items, rendered.Objects); err != nil {
		return res, err
	}
	if len(res.Changes) == 0 {
		return res, ErrNothingToBackport
	}
	co, err := writeback.Clone(ctx, u.RepoURL, base, u.Auth)
	if err != nil {
		return res, err
	}
	defer co.Close()
	res.Base = co.Branch
	if co.Commit != rep.Revision {
		return res, fmt.Errorf("unit %s: branch %s moved from %.12s to %.12s while backporting: try again", u.Name, co.Branch, rep.Revision, co.Commit)
	}
	dir, err := render.Join(co.Dir, u.Path)
	if err != nil {
		return res, err
	}
	if res.Files, err = backport.Write(co.Dir, u.Path, renderKind(u, dir), res.Changes); err != nil {
		return res, fmt.Errorf("unit %s: backport: %w", u.Name, err)
	}
	after, err := e.renderCheckout(ctx, u, co.Dir, co.Commit)
	if err != nil {
		return res, fmt.Errorf("unit %s: the backported folder does not render: %w", u.Name, err)
	}
	if err := rendersLive(after, res.Changes); err != nil {
		return res, fmt.Errorf("unit %s: backport: %w; nothing pushed", u.Name, err)
	}
	res.Branch = o.Branch
	if res.Branch == "" {
		res.Branch = "converge-backport-" + u.Name
	}
	if o.DryRun {
		return res, nil
	}
	body := backportBody(u.Name, rep.Revision, items, res.Changes)
	if _, err := co.CommitAll("Backport live drift of "+u.Name+"\n\n"+body, "converge", "converge@localhost"); err != nil {
		return res, err
	}
	if err := co.Push(ctx, res.Branch); err != nil {
		return res, err
	}
	f := o.Forge
	if f == nil {
		if f, err = forge.NewGitea(u.RepoURL, forgeToken(u)); err != nil {
			return res, err
		}
	}
	res.PR, err = f.Open(ctx, forge.PullRequest{Base: co.Branch, Head: res.Branch, Title: "Backport live drift of " + u.Name, Body: body})
	if err != nil {
		return res, fmt.Errorf("unit %s: pushed %s, but: %w", u.Name, res.Branch, err)
	}
	return res, nil
}

// forgeToken is the credential the forge's API takes: the unit's token
// or password, or the password in its repository URL.
func forgeToken(u Unit) string {
	switch {
	case u.Auth.BearerToken != "":
		return u.Auth.BearerToken
	case u.Auth.Password != "":
		return u.Auth.Password
	}
	if pu, err := url.Parse(u.RepoURL); err == nil && pu.User != nil {
		if p, ok := pu.User.Password(); ok {
			return p
		}
		return pu.User.Username() // a bare token as the user name
	}
	return ""
}

// backportChanges picks the drift to write back: what no policy allows,
// with a field path, never a Secret's. It says what it leaves out.
func backportChanges(items []drift.Item, rendered []object.Decoded) ([]backport.Change, []string, error) {
	var out []backport.Change
	var skipped []string
	for _, it := range items {
		if it.Path == "" || it.Action == drift.Allow || it.Action == drift.Ignore {
			continue
		}
		if it.Object.Group == "" && it.Object.Kind == "Secret" {
			skipped = append(skipped, it.Object.String()+" "+it.Path+": a Secret's values are never written to Git")
			continue
		}
		d, ok := renderedObject(rendered, it.Object)
		if !ok {
			skipped = append(skipped, it.Object.String()+": not in the render")
			continue
		}
		c := backport.Change{Object: it.Object, Source: d.Source, Path: it.FieldPath(), Remove: it.Live == ""}
		if !c.Remove {
			if err := json.Unmarshal([]byte(it.Live), &c.Value); err != nil {
				return nil, nil, fmt.Errorf("%s %s: live value: %w", it.Object, it.Path, err)
			}
		}
		c.Pointer, _ = drift.Pointer(d.Object.Object, c.Path)
		_, c.Rendered = drift.Get(d.Object.Object, c.Path)
		out = append(out, c)
	}
	return out, skipped, nil
}

// renderedObject finds ref among objects as rendered, before the unit's
// namespace is given to those without one.
func renderedObject(objs []object.Decoded, ref object.Ref) (object.Decoded, bool) {
	for _, d := range objs {
		r := object.RefOf(d.Object)
		if r.Group == ref.Group && r.Kind == ref.Kind && r.Name == ref.Name && (r.Namespace == "" || r.Namespace == ref.Namespace) {
			return d, true
		}
	}
	return object.Decoded{}, false
}

// rendersLive checks that the backported folder renders the live value of
// every field it changed.
func rendersLive(objs []object.Decoded, changes []backport.Change) error {
	var errs []error
	for _, c := range changes {
		d, ok := renderedObject(objs, c.Object)
		if !ok {
			errs = append(errs, fmt.Errorf("%s is no longer rendered", c.Object))
			continue
		}
		got, present := drift.Get(d.Object.Object, c.Path)
		switch {
		case c.Remove && present:
			errs = append(errs, fmt.Errorf("%s %s still renders", c.Object, c.Path))
		case !c.Remove && (!present || !equality.Semantic.DeepEqual(viaJSON(got), viaJSON(c.Value))):
			errs = append(errs, fmt.Errorf("%s %s renders %v, live is %v", c.Object, c.Path, got, c.Value))
		}
	}
	return errors.Join(errs...)
}

// viaJSON puts a value through JSON, so that an int and an int64 compare.
func viaJSON(v any) any {
	data, _ := json.Marshal(v)
	var out any
	json.Unmarshal(data, &out)
	return out
}

// backportBody is the pull request's description: each field, its Git
// and live values, who holds it and why it is drift.
func backportBody(unit, revision string, items []drift.Item, changes []backport.Change) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Live values of unit %s that differ from Git at %.12s, written back so that Git says what runs.\n\n", unit, revision)
	b.WriteString("| object | field | Git | live | manager | category | rule |\n|---|---|---|---|---|---|---|\n")
	want := map[string]bool{}
	for _, c := range changes {
		want[c.Object.String()+" "+c.Path.String()] = true
	}
	cell := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, it := range items {
		if !want[it.Object.String()+" "+it.Path] {
			continue
		}
		fmt.Fprintf(&b, "| %s | `%s` | `%s` | `%s` | %s | %s | %s |\n", it.Object, it.Path, cell(it.Desired), cell(it.Live), cell(it.Manager), it.Category, it.Rule)
	}
	b.WriteString("\nMerge it to keep the live values; close it and sync to restore Git's.\n")
	return b.String()
}
