// Package argocd translates Argo CD's Application and AppProject into
// engine units and back into Argo CD's status shape, so that existing
// manifests, dashboards and habits keep working on converge.
package argocd

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/dialect/specfields"
	"converge.dev/converge/internal/diff"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/render"
)

// InClusterServer is the destination server of the cluster converge runs
// in; other clusters are registered by cluster Secrets (ResolveDestination).
const InClusterServer = "https://kubernetes.default.svc"

// RefreshAnnotation asks for an immediate comparison of an Application
// ("normal", or "hard" for fresh sources), as in Argo CD;
// AppSetRefreshAnnotation asks an ApplicationSet to generate again.
const (
	RefreshAnnotation       = "argocd.argoproj.io/refresh"
	AppSetRefreshAnnotation = "argocd.argoproj.io/application-set-refresh"
)

// UnitName is the owner id an Application's objects carry.
func UnitName(app *v1alpha1.Application) string {
	return "argocd." + app.Namespace + "." + app.Name
}

// Options is how an Application wants to be synced.
type Options struct {
	Sync            engine.SyncOptions
	Automated       bool
	SelfHeal        bool
	CreateNamespace bool
}

// ToUnit translates an Application into a unit and its sync options.
func ToUnit(app *v1alpha1.Application) (engine.Unit, Options, error) {
	src := app.Spec.Source
	if src == nil {
		return engine.Unit{}, Options{}, fmt.Errorf("spec.source is required (spec.sources is not supported yet)")
	}
	u := engine.Unit{
		Name:          UnitName(app),
		RepoURL:       src.RepoURL,
		Revision:      src.TargetRevision,
		Path:          src.Path,
		DestNamespace: app.Spec.Destination.Namespace,
	}
	// Argo CD evaluates the .jsonnet files of every plain folder, with
	// its build environment available to the variables.
	u.Render.Jsonnet = &render.JsonnetOptions{Env: map[string]string{
		"ARGOCD_APP_NAME": app.Name, "ARGOCD_APP_NAMESPACE": app.Spec.Destination.Namespace,
		"ARGOCD_APP_PROJECT_NAME": app.Spec.Project, "ARGOCD_APP_SOURCE_REPO_URL": src.RepoURL,
		"ARGOCD_APP_SOURCE_PATH": src.Path, "ARGOCD_APP_SOURCE_TARGET_REVISION": src.TargetRevision,
	}}
	if d := src.Directory; d != nil {
		u.Render.Recurse = d.Recurse
		u.Render.Include, u.Render.Exclude = d.Include, d.Exclude
		u.Render.Kind = render.Directory
		for _, v := range d.Jsonnet.ExtVars {
			u.Render.Jsonnet.ExtVars = append(u.Render.Jsonnet.ExtVars, render.JsonnetVar{Name: v.Name, Value: v.Value, Code: v.Code})
		}
		for _, v := range d.Jsonnet.TLAs {
			u.Render.Jsonnet.TLAs = append(u.Render.Jsonnet.TLAs, render.JsonnetVar{Name: v.Name, Value: v.Value, Code: v.Code})
		}
		u.Render.Jsonnet.Libs = d.Jsonnet.Libs
	}
	if h := src.Helm; h != nil {
		u.Render.Kind = render.Helm
		u.Render.HelmReleaseName = h.ReleaseName
		if u.Render.HelmReleaseName == "" {
			u.Render.HelmReleaseName = app.Name // Argo CD's default
		}
		u.Render.HelmValueFiles = h.ValueFiles
		if h.Values != "" {
			if err := yaml.Unmarshal([]byte(h.Values), &u.Render.HelmValues); err != nil {
				return engine.Unit{}, Options{}, fmt.Errorf("spec.source.helm.values: %w", err)
			}
		}
	}
	for _, ig := range app.Spec.IgnoreDifferences {
		u.Ignore = append(u.Ignore, diff.Ignore{Group: ig.Group, Kind: ig.Kind, Name: ig.Name, Namespace: ig.Namespace,
			JSONPointers: ig.JSONPointers, JQPathExpressions: ig.JQPathExpressions, ManagedFieldsManagers: ig.ManagedFieldsManagers})
	}
	// Argo CD's own applies always win over other field managers: that is
	// what selfHeal means, and what a manual sync does.
	// An Argo CD sync of several waves or with hooks waits for each
	// wave's health; one of a single wave ends once it is applied.
	o := Options{Sync: engine.SyncOptions{Wait: true, WaitMultiStepOnly: true}}
	if err := engine.Guards(&o.Sync, app.Annotations); err != nil {
		return engine.Unit{}, Options{}, fmt.Errorf("metadata.annotations: %w", err)
	}
	if p := app.Spec.SyncPolicy; p != nil {
		if a := p.Automated; a != nil {
			o.Automated, o.SelfHeal = true, a.SelfHeal
			o.Sync.Prune, o.Sync.AllowEmpty = a.Prune, a.AllowEmpty
		}
		for _, opt := range p.SyncOptions {
			switch opt {
			case "CreateNamespace=true":
				o.CreateNamespace = true
			case "RespectIgnoreDifferences=true":
				u.RespectIgnoreDifferences = true
			}
		}
	}
	return u, o, nil
}

// supportedSyncOptions are the syncOptions converge honours; the engine
// already applies out-of-sync objects only, with server-side apply, and
// prunes last.
var supportedSyncOptions = map[string]bool{
	"CreateNamespace=true": true, "CreateNamespace=false": true,
	"ApplyOutOfSyncOnly=true": true, "ApplyOutOfSyncOnly=false": true,
	"PruneLast=true": true, "ServerSideApply=true": true, "Validate=true": true,
	"RespectIgnoreDifferences=true": true, "RespectIgnoreDifferences=false": true,
}

// known lists the spec fields converge supports, as dotted paths; a
// trailing ".*" accepts any field below.
var known = []string{
	"spec.project", "spec.source.repoURL", "spec.source.path", "spec.source.targetRevision",
	"spec.source.directory.recurse", "spec.source.directory.include", "spec.source.directory.exclude",
	"spec.source.directory.jsonnet.extVars", "spec.source.directory.jsonnet.tlas", "spec.source.directory.jsonnet.libs",
	"spec.source.helm.valueFiles", "spec.source.helm.values",
	"spec.source.helm.releaseName", "spec.destination.server", "spec.destination.namespace",
	"spec.destination.name", "spec.syncPolicy.automated.prune", "spec.syncPolicy.automated.selfHeal",
	"spec.syncPolicy.automated.allowEmpty", "spec.syncPolicy.syncOptions", "spec.syncPolicy.retry.*",
	"spec.revisionHistoryLimit", "spec.ignoreDifferences",
}

// Supported lists the Application spec fields converge acts on, as
// dotted paths from the object's root; a path covers every field below
// it.
func Supported() []string {
	out := make([]string, 0, len(known))
	for _, k := range known {
		out = append(out, strings.TrimSuffix(k, ".*"))
	}
	return out
}

// Unsupported names every field of the Application's spec, and every
// syncOption, that converge does not act on, sorted. They are reported,
// never silently ignored.
func Unsupported(app *unstructured.Unstructured) []string {
	spec, _, _ := unstructured.NestedMap(app.Object, "spec")
	out := specfields.Unknown("spec", spec, known)
	opts, _, _ := unstructured.NestedStringSlice(app.Object, "spec", "syncPolicy", "syncOptions")
	for _, o := range opts {
		if !supportedSyncOptions[o] {
			out = append(out, "spec.syncPolicy.syncOptions["+o+"]")
		}
	}
	sort.Strings(out)
	return out
}

// projectKnown lists the AppProject spec fields converge acts on. A
// field it does not act on can only make a project stricter in Argo CD
// (signature keys, a whitelist entry's name, source namespaces), so
// ignoring one silently would permit more than the user wrote.
var projectKnown = []string{
	"spec.sourceRepos", "spec.destinations[].server", "spec.destinations[].namespace", "spec.destinations[].name",
	"spec.description", "spec.clusterResourceWhitelist[].group", "spec.clusterResourceWhitelist[].kind",
	"spec.clusterResourceBlacklist[].group", "spec.clusterResourceBlacklist[].kind",
	"spec.namespaceResourceWhitelist[].group", "spec.namespaceResourceWhitelist[].kind",
	"spec.namespaceResourceBlacklist[].group", "spec.namespaceResourceBlacklist[].kind",
	"spec.syncWindows[].kind", "spec.syncWindows[].schedule", "spec.syncWindows[].duration", "spec.syncWindows[].applications",
	"spec.syncWindows[].namespaces", "spec.syncWindows[].clusters", "spec.syncWindows[].manualSync", "spec.syncWindows[].timeZone",
	"spec.syncWindows[].andOperator", "spec.syncWindows[].description",
	"spec.roles[].name", "spec.roles[].description", "spec.roles[].policies", "spec.roles[].groups",
}

// ProjectSupported lists the AppProject spec fields converge acts on.
func ProjectSupported() []string { return append([]string(nil), projectKnown...) }

// ProjectUnsupported names every field of the AppProject's spec that
// converge does not act on, sorted.
func ProjectUnsupported(proj *unstructured.Unstructured) []string {
	spec, _, _ := unstructured.NestedMap(proj.Object, "spec")
	return specfields.Unknown("spec", spec, projectKnown)
}

// refusedSources are source fields converge cannot render. Going on
// without them would render nothing, or something else, and report it
// synced: so they are an error, not only an unsupported field.
var refusedSources = []struct{ field, why string }{
	{"plugin", "config management plugins are not supported by converge"},
}

// Refused returns an error naming a source field of the Application that
// converge cannot render, or nil.
func Refused(app *unstructured.Unstructured) error {
	src, _, _ := unstructured.NestedMap(app.Object, "spec", "source")
	for _, r := range refusedSources {
		if _, ok := src[r.field]; ok {
			return fmt.Errorf("spec.source.%s: %s; nothing is rendered or synced", r.field, r.why)
		}
	}
	return nil
}

// Permits checks an Application against its project's source repositories
// and destinations, with its destination resolved to dest (a project may
// name the cluster by URL or by name). Patterns are globs, as Argo CD
// documents them.
func Permits(proj *v1alpha1.AppProject, app *v1alpha1.Application, dest Cluster) error {
	repo := ""
	if app.Spec.Source != nil {
		repo = app.Spec.Source.RepoURL
	}
	if !anyGlob(proj.Spec.SourceRepos, repo) {
		return fmt.Errorf("application repo %s is not permitted in project '%s'", repo, proj.Name)
	}
	d := app.Spec.Destination
	for _, pd := range proj.Spec.Destinations {
		serverOK := (pd.Server != "" && glob(pd.Server, dest.Server)) || (pd.Name != "" && glob(pd.Name, dest.Name))
		if serverOK && glob(orDefault(pd.Namespace, "*"), d.Namespace) {
			return nil
		}
	}
	return fmt.Errorf("application destination server '%s' and namespace '%s' do not match any of the allowed destinations in project '%s'", dest.Server, d.Namespace, proj.Name)
}

func anyGlob(patterns []string, s string) bool {
	for _, p := range patterns {
		if glob(p, s) {
			return true
		}
	}
	return false
}

// glob matches like Argo CD's project patterns: '*' spans anything, a
// leading '!' is not supported here and never matches.
func glob(pattern, s string) bool {
	if pattern == "*" {
		return true
	}
	ok, err := path.Match(pattern, s)
	if err == nil && ok {
		return true
	}
	// path.Match stops '*' at '/'; URLs need it to cross.
	return wildcard(pattern, s)
}

func wildcard(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
