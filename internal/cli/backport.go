package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/equality"

	"converge.dev/converge/internal/backport"
	"converge.dev/converge/internal/drift"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/forge"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/source"
	"converge.dev/converge/internal/writeback"
)

func newDriftBackportCmd() *cobra.Command {
	var f unitFlags
	var branch string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "backport --repo URL [--revision BRANCH] [--path P] [--name UNIT] [--drift-policy FILE]",
		Short: "Write the live values of drifted fields into Git and open a pull request",
		Long: `Backport makes Git tell the truth again after an emergency change (the
seed's §15.1 step 9). It takes the unit's drift that no policy allows
(reported, reverted or held by an override), writes the live values into
a clone of the unit's branch, checks that the folder then renders exactly
those values, pushes the change to a branch of its own and opens a pull
request on the forge (Gitea), or finds the one already open.

A plain folder is edited where each object is declared, comments kept. A
kustomize overlay gets a JSON 6902 patch in the overlay; its base is never
edited. A Helm chart is refused: which value produced a rendered field is
not recorded. Secrets are never written to Git.

Credentials: --git-username and $CONVERGE_GIT_PASSWORD (or
$CONVERGE_GIT_TOKEN) push the branch and call the forge's API.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			u, eng, err := f.setup(true)
			if err != nil {
				return err
			}
			rev := source.ParseRevision(u.Revision)
			if rev.Tag != "" || rev.SemVer != "" || rev.Commit != "" {
				return fmt.Errorf("--revision %q: a backport is proposed against a branch", u.Revision)
			}
			base := rev.Branch
			if base == "" {
				base = rev.Name // a tag of that name fails the clone
			}
			rep, err := eng.Diff(ctx, u, engine.SyncOptions{})
			if err != nil {
				return err
			}
			rendered, err := eng.Render(ctx, u)
			if err != nil {
				return err
			}
			changes, skipped, err := backportChanges(rep.Drift, rendered.Objects)
			if err != nil {
				return err
			}
			for _, s := range skipped {
				fmt.Fprintf(cmd.ErrOrStderr(), "converge: not backported: %s\n", s)
			}
			if len(changes) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "nothing to backport")
				return nil
			}
			co, err := writeback.Clone(ctx, u.RepoURL, base, u.Auth)
			if err != nil {
				return err
			}
			defer co.Close()
			if co.Commit != rep.Revision {
				return fmt.Errorf("branch %s moved from %.12s to %.12s while backporting: run it again", co.Branch, rep.Revision, co.Commit)
			}
			_, kind, err := eng.RenderCheckout(ctx, u, co.Dir, co.Commit)
			if err != nil {
				return err
			}
			files, err := backport.Write(co.Dir, u.Path, kind, changes)
			if err != nil {
				return fmt.Errorf("unit %s: backport: %w", u.Name, err)
			}
			after, _, err := eng.RenderCheckout(ctx, u, co.Dir, co.Commit)
			if err != nil {
				return fmt.Errorf("unit %s: the backported folder does not render: %w", u.Name, err)
			}
			if err := rendersLive(after, changes); err != nil {
				return fmt.Errorf("unit %s: backport: %w; nothing pushed", u.Name, err)
			}
			for _, c := range changes {
				fmt.Fprintf(cmd.OutOrStdout(), "backport %s %s\n", c.Object, c.Path)
			}
			if dryRun {
				fmt.Fprintf(cmd.OutOrStdout(), "would change %s and open a pull request into %s\n", strings.Join(files, ", "), co.Branch)
				return nil
			}
			body := backportBody(u.Name, rep.Revision, rep.Drift, changes)
			if _, err := co.CommitAll("Backport live drift of "+u.Name+"\n\n"+body, "converge", "converge@localhost"); err != nil {
				return err
			}
			if branch == "" {
				branch = "converge-backport-" + u.Name
			}
			if err := co.Push(ctx, branch); err != nil {
				return err
			}
			token := os.Getenv(envGitToken)
			if token == "" {
				token = os.Getenv(envGitPassword)
			}
			g, err := forge.NewGitea(u.RepoURL, token)
			if err != nil {
				return err
			}
			pr, err := g.Open(ctx, forge.PullRequest{Base: co.Branch, Head: branch, Title: "Backport live drift of " + u.Name, Body: body})
			if err != nil {
				return fmt.Errorf("pushed %s, but: %w", branch, err)
			}
			verb := "opened"
			if pr.Existing {
				verb = "updated"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s pull request #%d %s (%s into %s)\n", verb, pr.Number, pr.URL, branch, co.Branch)
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&branch, "branch", "", "branch to push the change to (default converge-backport-UNIT)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "write and check the change in a clone, push nothing")
	return cmd
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
		case !c.Remove && (!present || !equality.Semantic.DeepEqual(normal(got), normal(c.Value))):
			errs = append(errs, fmt.Errorf("%s %s renders %v, live is %v", c.Object, c.Path, got, c.Value))
		}
	}
	return errors.Join(errs...)
}

// normal puts a value through JSON, so that an int and an int64 compare.
func normal(v any) any {
	data, _ := json.Marshal(v)
	var out any
	json.Unmarshal(data, &out)
	return out
}

// backportBody is the pull request's description: each field, its live
// and Git values, who holds it and why it is drift.
func backportBody(unit, revision string, items []drift.Item, changes []backport.Change) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Live values of unit %s that differ from Git at %.12s, written back so that Git says what runs.\n\n", unit, revision)
	b.WriteString("| object | field | Git | live | manager | category | rule |\n|---|---|---|---|---|---|---|\n")
	want := map[string]bool{}
	for _, c := range changes {
		want[c.Object.String()+" "+c.Path.String()] = true
	}
	for _, it := range items {
		if !want[it.Object.String()+" "+it.Path] {
			continue
		}
		fmt.Fprintf(&b, "| %s | `%s` | `%s` | `%s` | %s | %s | %s |\n", it.Object, it.Path, dash(it.Desired), dash(it.Live), dash(it.Manager), it.Category, it.Rule)
	}
	b.WriteString("\nMerge it to keep the live values; close it and sync to restore Git's.\n")
	return b.String()
}
