// Package helm renders Helm charts that live inside a source snapshot,
// with helm.sh/helm's own template engine, the way `helm template` does:
// values files and inline values, the release name and namespace, and the
// target cluster's version as .Capabilities.KubeVersion.
package helm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/render"
)

// ErrDependenciesMissing is a chart whose Chart.yaml names dependencies
// that are not in its charts/ folder.
var ErrDependenciesMissing = errors.New("chart dependencies are not built")

// Options configure Render.
type Options struct {
	// ReleaseName is .Release.Name. If empty, the chart's name.
	ReleaseName string
	// Namespace is .Release.Namespace. If empty, "default".
	Namespace string
	// ValueFiles are paths relative to the chart folder, merged in order;
	// they may not leave the snapshot.
	ValueFiles []string
	// Values are merged over the files, as --set-json would.
	Values map[string]any
	// KubeVersion is the target cluster's version ("v1.37.2"), checked
	// against the chart's kubeVersion. If empty, DefaultKubeVersion.
	KubeVersion string
	// MaxFileSize bounds one file. If zero, render.DefaultMaxFileSize.
	MaxFileSize int64
}

// DefaultKubeVersion is the Kubernetes version a chart is rendered for
// when there is no cluster to ask: the one whose client converge is
// built with (client-go v0.N.M is Kubernetes v1.N.M). Helm's own default
// is v1.20.0, which charts that declare a recent kubeVersion refuse.
func DefaultKubeVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "k8s.io/client-go" && strings.HasPrefix(m.Version, "v0.") {
				return "v1." + strings.TrimPrefix(m.Version, "v0.")
			}
		}
	}
	return fallbackKubeVersion
}

// fallbackKubeVersion is used when the build carries no module
// information; keep it at the client-go version in go.mod.
const fallbackKubeVersion = "v1.37.2"

// Render templates the chart in dir, a folder inside root. CRDs from the
// chart's crds/ folder come first, hooks last. Each object's source is
// the template that produced it.
func Render(root, dir string, o Options) ([]object.Decoded, error) {
	if err := render.CheckTree(root, dir, o.MaxFileSize); err != nil {
		return nil, err
	}
	rel, _ := filepath.Rel(root, dir)
	rel = filepath.ToSlash(rel)
	chrt, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: load chart: %w", rel, err)
	}
	// Helm would render a chart without its dependencies, leaving out
	// everything they hold: green while deploying nothing. Argo CD builds
	// them, and so does converge; one it cannot get is an error.
	if deps := chrt.Metadata.Dependencies; len(deps) > 0 {
		if err := action.CheckDependencies(chrt, deps); err != nil {
			if berr := buildDependencies(root, dir, rel, chrt); berr != nil {
				return nil, fmt.Errorf("%w: %v", ErrDependenciesMissing, berr)
			}
			if err := action.CheckDependencies(chrt, deps); err != nil {
				return nil, fmt.Errorf("%s: %w: %v", rel, ErrDependenciesMissing, err)
			}
		}
	}
	vals, err := values(root, dir, rel, o)
	if err != nil {
		return nil, err
	}
	return template(chrt, rel, vals, o)
}

// RenderChart templates a chart already loaded (from a Helm repository
// or an OCI artifact) with o.Values, as Render does a chart in a folder.
// o.ValueFiles must be empty: the chart has no folder to read them from.
// Sources are named "chart NAME/TEMPLATE".
func RenderChart(chrt *chart.Chart, o Options) ([]object.Decoded, error) {
	rel := "chart " + chrt.Name()
	if len(o.ValueFiles) > 0 {
		return nil, fmt.Errorf("%s: values files %v: a loaded chart has no folder to read them from", rel, o.ValueFiles)
	}
	if deps := chrt.Metadata.Dependencies; len(deps) > 0 {
		if err := action.CheckDependencies(chrt, deps); err != nil {
			return nil, fmt.Errorf("%s: %w: %v", rel, ErrDependenciesMissing, err)
		}
	}
	vals := map[string]any{}
	if len(o.Values) > 0 {
		vals = deepCopy(o.Values)
	}
	return template(chrt, rel, vals, o)
}

// template runs `helm template` on a loaded chart; rel names the chart
// in errors and in the objects' sources.
func template(chrt *chart.Chart, rel string, vals map[string]any, o Options) ([]object.Decoded, error) {
	cfg := &action.Configuration{
		Releases:     storage.Init(driver.NewMemory()),
		KubeClient:   &kubefake.PrintingKubeClient{Out: io.Discard},
		Capabilities: chartutil.DefaultCapabilities.Copy(),
		Log:          func(string, ...any) {},
	}
	inst := action.NewInstall(cfg)
	inst.DryRun, inst.DryRunOption, inst.ClientOnly = true, "client", true
	inst.Replace, inst.DisableHooks, inst.IncludeCRDs = true, true, false
	inst.ReleaseName = o.ReleaseName
	if inst.ReleaseName == "" {
		inst.ReleaseName = chrt.Name()
	}
	inst.Namespace = o.Namespace
	if inst.Namespace == "" {
		inst.Namespace = "default"
	}
	if o.KubeVersion == "" {
		o.KubeVersion = DefaultKubeVersion()
	}
	if o.KubeVersion != "" {
		kv, err := chartutil.ParseKubeVersion(o.KubeVersion)
		if err != nil {
			return nil, fmt.Errorf("%s: kube version %q: %w", rel, o.KubeVersion, err)
		}
		inst.KubeVersion = kv
	}
	rel2, err := inst.Run(chrt, vals)
	if err != nil {
		return nil, fmt.Errorf("%s: helm template: %w", rel, err)
	}
	var out []object.Decoded
	for _, crd := range chrt.CRDObjects() {
		objs, err := render.DecodeManifests(crd.File.Data, rel+"/"+strings.TrimPrefix(crd.Filename, chrt.Name()+"/"))
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	for _, m := range splitManifest(rel2.Manifest) {
		objs, err := render.DecodeManifests([]byte(m.body), rel+"/"+strings.TrimPrefix(m.source, chrt.Name()+"/"))
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	// Hooks come last, with their helm.sh/hook annotations, as `helm
	// template` prints them: Argo CD runs them in its sync phases
	// (pre-install as PreSync, post-upgrade as PostSync...), and so does
	// the plan. Leaving them out dropped a chart's migration or
	// admission-webhook Jobs without a word.
	for _, h := range rel2.Hooks {
		objs, err := render.DecodeManifests([]byte(h.Manifest), rel+"/"+strings.TrimPrefix(h.Path, chrt.Name()+"/"))
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

// values merges the chart's values files and inline values.
func values(root, dir, rel string, o Options) (map[string]any, error) {
	merged := map[string]any{}
	for _, f := range o.ValueFiles {
		// Values files may sit beside the chart (../values-prod.yaml), but
		// never outside the snapshot.
		inRoot, err := filepath.Rel(root, filepath.Join(dir, f))
		if err != nil {
			return nil, fmt.Errorf("%s: values file %s: %w", rel, f, err)
		}
		path, err := render.Join(root, inRoot)
		if err != nil {
			return nil, fmt.Errorf("%s: values file: %w", rel, err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: values file %s: %w", rel, f, err)
		}
		var v map[string]any
		if err := yaml.Unmarshal(data, &v); err != nil {
			return nil, fmt.Errorf("%s/%s: %w", rel, f, err)
		}
		merged = chartutil.CoalesceTables(v, merged)
	}
	if len(o.Values) > 0 {
		merged = chartutil.CoalesceTables(deepCopy(o.Values), merged)
	}
	return merged, nil
}

func deepCopy(m map[string]any) map[string]any {
	data, _ := yaml.Marshal(m)
	var out map[string]any
	yaml.Unmarshal(data, &out)
	return out
}

type manifest struct{ source, body string }

// splitManifest cuts Helm's rendered manifest at its "# Source:" lines,
// keeping template order.
func splitManifest(all string) []manifest {
	var out []manifest
	for _, doc := range strings.Split(all, "\n---\n") {
		doc = strings.TrimPrefix(strings.TrimSpace(doc), "---\n")
		src := "manifest"
		if first, rest, ok := strings.Cut(doc, "\n"); ok && strings.HasPrefix(first, "# Source: ") {
			src, doc = strings.TrimPrefix(first, "# Source: "), rest
		}
		if strings.TrimSpace(doc) != "" {
			out = append(out, manifest{src, doc})
		}
	}
	return out
}
