// Package helmrelease installs, upgrades and rolls back Helm releases
// with helm.sh/helm's own actions, in Helm's own storage (Secrets in the
// release namespace), so `helm list` and `helm history` see what
// converge did. It does not log; it returns what it did.
package helmrelease

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/kube"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cli-runtime/pkg/resource"
	"k8s.io/client-go/rest"
)

// Request is the release wanted.
type Request struct {
	Name, Namespace string
	Chart           *chart.Chart
	Values          map[string]any
	// Timeout bounds one Helm action. If zero, five minutes.
	Timeout time.Duration
	// RollbackOnFailure rolls a failed upgrade back to the last
	// successful release.
	RollbackOnFailure bool
	// CreateNamespace creates the release namespace on install.
	CreateNamespace bool
	// InstallCRDs and UpgradeCRDs are the policies for the chart's crds/
	// folder: Skip, Create or CreateReplace. Empty means Flux's defaults:
	// Create on install, Skip on upgrade.
	InstallCRDs, UpgradeCRDs string
	// Check, if set, runs before an install or upgrade renders the
	// chart, and its error stops the action. It guards this process
	// against a render that would take all its memory. If nil, none.
	Check func(ctx context.Context, c *chart.Chart, values map[string]any) error
}

// Outcome is what Reconcile did.
type Outcome struct {
	// Action is install, upgrade or unchanged.
	Action string
	// Release is the release now current (after a rollback, the
	// rolled-back-to one).
	Release *release.Release
	// RolledBack is true when a failed upgrade was remediated.
	RolledBack bool
}

// Manager runs Helm actions against one cluster.
type Manager struct {
	cfg *rest.Config
}

// New returns a Manager for the cluster of cfg.
func New(cfg *rest.Config) *Manager { return &Manager{cfg: cfg} }

func (m *Manager) action(namespace string) (*action.Configuration, error) {
	g, err := newGetter(m.cfg, namespace)
	if err != nil {
		return nil, err
	}
	ac := &action.Configuration{}
	if err := ac.Init(g, namespace, "secret", func(string, ...any) {}); err != nil {
		return nil, fmt.Errorf("helm: %w", err)
	}
	if kc, ok := ac.KubeClient.(*kube.Client); ok {
		kc.Namespace = namespace
	}
	return ac, nil
}

// Reconcile installs the release, or upgrades it when its chart version
// or values changed or its last attempt failed; otherwise it leaves it.
// A failed upgrade is rolled back when asked; the error is still
// returned, as the desired release did not land.
func (m *Manager) Reconcile(ctx context.Context, req Request) (Outcome, error) {
	if req.Timeout == 0 {
		req.Timeout = 5 * time.Minute
	}
	ac, err := m.action(req.Namespace)
	if err != nil {
		return Outcome{}, err
	}
	last, err := ac.Releases.Last(req.Name)
	switch {
	case errors.Is(err, driver.ErrReleaseNotFound) || (err == nil && last.Info.Status == release.StatusUninstalled):
		if err := check(ctx, req); err != nil {
			return Outcome{Action: "install"}, fmt.Errorf("helm install %s/%s: %w", req.Namespace, req.Name, err)
		}
		in := action.NewInstall(ac)
		in.ReleaseName, in.Namespace, in.Timeout = req.Name, req.Namespace, req.Timeout
		in.CreateNamespace = req.CreateNamespace
		switch req.InstallCRDs {
		case CRDsSkip:
			in.SkipCRDs = true
		case CRDsCreateReplace:
			// Helm's install only creates CRDs: replacing is ours to do.
			if err := m.applyCRDs(ac, req.Chart, true); err != nil {
				return Outcome{Action: "install"}, fmt.Errorf("helm install %s/%s: %w", req.Namespace, req.Name, err)
			}
			in.SkipCRDs = true
		}
		rel, err := in.RunWithContext(ctx, req.Chart, req.Values)
		if err != nil {
			return Outcome{Action: "install", Release: rel}, fmt.Errorf("helm install %s/%s: %w", req.Namespace, req.Name, err)
		}
		return Outcome{Action: "install", Release: rel}, nil
	case err != nil:
		return Outcome{}, fmt.Errorf("helm release %s/%s: %w", req.Namespace, req.Name, err)
	}
	if last.Info.Status == release.StatusDeployed && last.Chart.Metadata.Version == req.Chart.Metadata.Version &&
		valuesEqual(last.Config, req.Values) {
		return Outcome{Action: "unchanged", Release: last}, nil
	}
	if err := check(ctx, req); err != nil {
		return Outcome{Action: "upgrade"}, fmt.Errorf("helm upgrade %s/%s: %w", req.Namespace, req.Name, err)
	}
	// Helm's upgrade never touches crds/; Flux's Create and
	// CreateReplace policies do, before the upgrade.
	if req.UpgradeCRDs == CRDsCreate || req.UpgradeCRDs == CRDsCreateReplace {
		if err := m.applyCRDs(ac, req.Chart, req.UpgradeCRDs == CRDsCreateReplace); err != nil {
			return Outcome{Action: "upgrade"}, fmt.Errorf("helm upgrade %s/%s: %w", req.Namespace, req.Name, err)
		}
	}
	up := action.NewUpgrade(ac)
	up.Namespace, up.Timeout = req.Namespace, req.Timeout
	rel, uerr := up.RunWithContext(ctx, req.Name, req.Chart, req.Values)
	if uerr == nil {
		return Outcome{Action: "upgrade", Release: rel}, nil
	}
	out := Outcome{Action: "upgrade", Release: rel}
	if req.RollbackOnFailure {
		rb := action.NewRollback(ac)
		rb.Timeout = req.Timeout
		if rerr := rb.Run(req.Name); rerr != nil {
			return out, fmt.Errorf("helm upgrade %s/%s: %w; rollback failed too: %v", req.Namespace, req.Name, uerr, rerr)
		}
		out.RolledBack = true
		out.Release, _ = ac.Releases.Last(req.Name)
	}
	return out, fmt.Errorf("helm upgrade %s/%s: %w", req.Namespace, req.Name, uerr)
}

// The CRD policies Flux names.
const (
	CRDsSkip          = "Skip"
	CRDsCreate        = "Create"
	CRDsCreateReplace = "CreateReplace"
)

// applyCRDs creates the chart's CRDs (and its dependencies') that do not
// exist; with replace, it updates the ones that do.
func (m *Manager) applyCRDs(ac *action.Configuration, c *chart.Chart, replace bool) error {
	for _, crd := range c.CRDObjects() {
		res, err := ac.KubeClient.Build(bytes.NewReader(crd.File.Data), false)
		if err != nil {
			return fmt.Errorf("CRD %s: %w", crd.Filename, err)
		}
		for _, info := range res {
			one := kube.ResourceList{info}
			_, err := resource.NewHelper(info.Client, info.Mapping).Get(info.Namespace, info.Name)
			switch {
			case apierrors.IsNotFound(err):
				if _, err := ac.KubeClient.Create(one); err != nil {
					return fmt.Errorf("CRD %s: create: %w", info.Name, err)
				}
			case err != nil:
				return fmt.Errorf("CRD %s: %w", info.Name, err)
			case replace:
				if _, err := ac.KubeClient.Update(one, one, false); err != nil {
					return fmt.Errorf("CRD %s: replace: %w", info.Name, err)
				}
			}
		}
	}
	return nil
}

func check(ctx context.Context, req Request) error {
	if req.Check == nil {
		return nil
	}
	return req.Check(ctx, req.Chart, req.Values)
}

// History returns the release's revisions, newest first.
func (m *Manager) History(name, namespace string) ([]*release.Release, error) {
	ac, err := m.action(namespace)
	if err != nil {
		return nil, err
	}
	h, err := ac.Releases.History(name)
	if err != nil {
		return nil, err
	}
	for i := 0; i < len(h); i++ { // newest first
		for j := i + 1; j < len(h); j++ {
			if h[j].Version > h[i].Version {
				h[i], h[j] = h[j], h[i]
			}
		}
	}
	return h, nil
}

// valuesEqual compares values as Helm stores them (JSON round-trip
// shapes), treating nil and empty as equal.
func valuesEqual(a, b map[string]any) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(normalize(a), normalize(b))
}

func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case int:
		return float64(x)
	case int64:
		return float64(x)
	}
	return v
}

// Uninstall removes the release and its objects; a missing release is
// fine.
func (m *Manager) Uninstall(name, namespace string, timeout time.Duration) error {
	ac, err := m.action(namespace)
	if err != nil {
		return err
	}
	if _, err := ac.Releases.Last(name); errors.Is(err, driver.ErrReleaseNotFound) {
		return nil
	}
	un := action.NewUninstall(ac)
	un.Timeout = timeout
	if _, err := un.Run(name); err != nil {
		return fmt.Errorf("helm uninstall %s/%s: %w", namespace, name, err)
	}
	return nil
}

// Test runs the release's test hooks (helm test) and reports a failure.
func (m *Manager) Test(ctx context.Context, name, namespace string, timeout time.Duration) error {
	ac, err := m.action(namespace)
	if err != nil {
		return err
	}
	t := action.NewReleaseTesting(ac)
	t.Namespace, t.Timeout = namespace, timeout
	if _, err := t.Run(name); err != nil {
		return fmt.Errorf("helm test %s/%s: %w", namespace, name, err)
	}
	return nil
}
