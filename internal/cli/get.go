package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"converge.dev/converge/internal/controller"
	"converge.dev/converge/internal/units"
)

// kindAliases are the names `converge get` and `converge tree` accept
// for each unit kind: kubectl's plural, short and singular forms.
var kindAliases = map[string]string{
	"application": "Application", "applications": "Application", "app": "Application", "apps": "Application",
	"applicationset": "ApplicationSet", "applicationsets": "ApplicationSet", "appset": "ApplicationSet", "appsets": "ApplicationSet",
	"kustomization": "Kustomization", "kustomizations": "Kustomization", "ks": "Kustomization",
	"helmrelease": "HelmRelease", "helmreleases": "HelmRelease", "hr": "HelmRelease",
	"gitrepository": "GitRepository", "gitrepositories": "GitRepository", "gitrepo": "GitRepository",
	"ocirepository": "OCIRepository", "ocirepositories": "OCIRepository", "ocirepo": "OCIRepository",
	"helmrepository": "HelmRepository", "helmrepositories": "HelmRepository", "helmrepo": "HelmRepository",
	"imagerepository": "ImageRepository", "imagerepositories": "ImageRepository", "imagerepo": "ImageRepository",
	"imagepolicy": "ImagePolicy", "imagepolicies": "ImagePolicy",
	"imageupdateautomation": "ImageUpdateAutomation", "imageupdateautomations": "ImageUpdateAutomation", "imageupdate": "ImageUpdateAutomation",
	"pipeline": "Pipeline", "pipelines": "Pipeline",
}

// unitKind reads a kind argument.
func unitKind(arg string) (string, error) {
	if k, ok := kindAliases[strings.ToLower(arg)]; ok {
		return k, nil
	}
	return "", fmt.Errorf("kind %q: want one of application, applicationset, kustomization, helmrelease, gitrepository, ocirepository, helmrepository, "+
		"imagerepository, imagepolicy, imageupdateautomation, pipeline", arg)
}

func newGetCmd() *cobra.Command {
	var kubeconfig, kcontext, namespace, selector, output string
	var watch bool
	cmd := &cobra.Command{
		Use:   "get [KIND]",
		Short: "List the units of both dialects, with their source, revision, sync and health",
		Long: `get lists Argo CD Applications and ApplicationSets, Flux Kustomizations,
HelmReleases and sources, and converge's Pipelines in one table, as the
controller's status says them: dialect, kind, namespace/name,
source@revision, sync, health, age and message. KIND narrows it to one
kind (application, ks, hr, ...). With -w it keeps printing each unit that
changes. Kinds the cluster does not serve are named on stderr.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			types := units.Types
			if len(args) == 1 {
				kind, err := unitKind(args[0])
				if err != nil {
					return err
				}
				types = []units.Type{*units.TypeOf(kind)}
			}
			if output != "" && output != "json" && output != "yaml" && output != "wide" {
				return fmt.Errorf("output format %q: use json, yaml or wide", output)
			}
			if watch && (output == "json" || output == "yaml") {
				return fmt.Errorf("-w prints table rows; -o %s lists once", output)
			}
			sel := labels.Everything()
			if selector != "" {
				var err error
				if sel, err = labels.Parse(selector); err != nil {
					return fmt.Errorf("--selector %q: %w", selector, err)
				}
			}
			idx, err := watchUnits(cmd.Context(), kubeconfig, kcontext, namespace, types, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			q := units.Query{Namespace: namespace, Labels: sel, Limit: units.MaxLimit}
			var all []units.Summary
			for {
				page, err := idx.List(q)
				if err != nil {
					return err
				}
				all = append(all, page.Items...)
				if q.After = page.Next; q.After == "" {
					break
				}
			}
			if done, err := writeStructured(cmd.OutOrStdout(), output, all); done {
				return err
			}
			t := newUnitTable(cmd.OutOrStdout(), output == "wide", all)
			t.header()
			for _, s := range all {
				t.row(s, false)
			}
			if !watch {
				return nil
			}
			events, stop := idx.Watch()
			defer stop()
			for {
				select {
				case <-cmd.Context().Done():
					return nil
				case e, ok := <-events:
					if !ok {
						return fmt.Errorf("fell behind the changes: run get again")
					}
					if (namespace == "" || e.Unit.Namespace == namespace) && sel.Matches(labels.Set(e.Unit.Labels)) {
						t.row(e.Unit, e.Deleted)
					}
				}
			}
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&kcontext, "context", "", "kubeconfig context")
	fs.StringVarP(&namespace, "namespace", "n", "", "only this namespace (default: all)")
	fs.StringVarP(&selector, "selector", "l", "", "only units whose labels match, e.g. team=payments")
	fs.StringVarP(&output, "output", "o", "", "output format: json, yaml, or wide (adds project and cluster)")
	fs.BoolVarP(&watch, "watch", "w", false, "after the list, print each unit that changes")
	return cmd
}

// watchUnits starts informers for the unit types (in namespace, if
// given) and returns an index they keep, synced once.
func watchUnits(ctx context.Context, kubeconfig, kcontext, namespace string, types []units.Type, stderr io.Writer) (*units.Index, error) {
	cfg, err := restConfig(kubeconfig, kcontext)
	if err != nil {
		return nil, err
	}
	scheme, err := controller.Scheme()
	if err != nil {
		return nil, err
	}
	o := cache.Options{Scheme: scheme, DefaultTransform: cache.TransformStripManagedFields()}
	if namespace != "" {
		o.DefaultNamespaces = map[string]cache.Config{namespace: {}}
	}
	c, err := cache.New(cfg, o)
	if err != nil {
		return nil, err
	}
	idx := units.NewIndex()
	unserved, err := units.Feed(ctx, c, idx, units.FeedOptions{Types: types, SkipUnserved: true})
	if err != nil {
		return nil, err
	}
	for _, k := range unserved {
		fmt.Fprintf(stderr, "%s is not served by this cluster (no CRD): none listed\n", k)
	}
	go c.Start(ctx)
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if !c.WaitForCacheSync(sctx) {
		return nil, fmt.Errorf("listing units: the API server did not answer within a minute")
	}
	return idx, nil
}

// unitTable prints units as aligned rows; the widths come from the first
// list, so that watched rows line up under it.
type unitTable struct {
	w      io.Writer
	wide   bool
	widths []int
}

func newUnitTable(w io.Writer, wide bool, first []units.Summary) *unitTable {
	t := &unitTable{w: w, wide: wide}
	head := t.cells(units.Summary{}, false, true)
	t.widths = make([]int, len(head))
	measure := func(row []string) {
		for i, c := range row {
			t.widths[i] = max(t.widths[i], len(c))
		}
	}
	measure(head)
	for _, s := range first {
		measure(t.cells(s, false, false))
	}
	return t
}

func (t *unitTable) header() { t.print(t.cells(units.Summary{}, false, true)) }

func (t *unitTable) row(s units.Summary, deleted bool) { t.print(t.cells(s, deleted, false)) }

func (t *unitTable) print(cells []string) {
	var b strings.Builder
	for i, c := range cells {
		if i == len(cells)-1 {
			b.WriteString(c)
			break
		}
		fmt.Fprintf(&b, "%-*s   ", t.widths[i], c)
	}
	fmt.Fprintln(t.w, strings.TrimRight(b.String(), " "))
}

// cells are a row's columns (the header's with header set).
func (t *unitTable) cells(s units.Summary, deleted, header bool) []string {
	if header {
		h := []string{"DIALECT", "KIND", "NAMESPACE/NAME", "SOURCE@REVISION", "SYNC", "HEALTH", "AGE"}
		if t.wide {
			h = append(h, "PROJECT", "CLUSTER")
		}
		return append(h, "MESSAGE")
	}
	src := s.Source
	if rev := shortRevision(s.Revision); rev != "" {
		src += "@" + rev
	}
	sync := s.Sync
	if deleted {
		sync = "Deleted"
	}
	age := "-"
	if !s.Created.IsZero() {
		age = duration.HumanDuration(time.Since(s.Created))
	}
	row := []string{s.Dialect, s.Kind, s.Namespace + "/" + s.Name, orDash(src), sync, s.Health, age}
	if t.wide {
		row = append(row, orDash(s.Project), orDash(s.Cluster))
	}
	return append(row, s.Message)
}

// shortRevision shortens a commit or digest for a table: main@sha1:abc…
// is main@abc123456789, a bare SHA its first 12.
func shortRevision(rev string) string {
	branch, id, found := strings.Cut(rev, "@")
	if !found {
		branch, id = "", rev
	}
	if _, after, ok := strings.Cut(id, ":"); ok {
		id = after
	}
	if len(id) > 12 && isHex(id) {
		id = id[:12]
	}
	if branch != "" {
		return branch + "@" + id
	}
	return id
}

func isHex(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}
