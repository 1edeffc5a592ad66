package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/gorilla/securecookie"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/server"
	"converge.dev/converge/internal/server/rbac"
	"converge.dev/converge/internal/server/session"
	"converge.dev/converge/internal/source/git"
	"converge.dev/converge/internal/tree"
	"converge.dev/converge/internal/units"
)

// UIOptions configure the web UI and its API.
type UIOptions struct {
	// Addr serves them, e.g. ":8080". If empty, there is none.
	Addr string
	// Ready, if set, is told the bound address (useful with port 0).
	Ready func(net.Addr)
	// Accounts are local users, such as the admin `converge up` makes.
	Accounts map[string]session.Account
	// RBACNamespace holds Argo CD's argocd-rbac-cm and is Argo CD's own
	// namespace for RBAC objects. If empty, "argocd".
	RBACNamespace string
	// Secure marks the cookies HTTPS-only (behind a TLS proxy).
	Secure bool
	// OIDC, if set, logs users in through an OpenID Connect provider; it
	// must answer when the controller starts.
	OIDC *session.OIDCConfig
	// KeySecret names the Secret holding the session keys (made with
	// random keys if missing), so that logins survive restarts and work
	// on every replica. If Name is empty, each process makes its own.
	KeySecret types.NamespacedName
}

// ServeOptions configure a UI server run apart from the controller.
type ServeOptions struct {
	UI UIOptions
	// Logger receives controller-runtime's logs. The zero Logger drops
	// them.
	Logger logr.Logger
	// Commits reads a commit's author and message for history; nil shows
	// revisions only (the server has no Git cache of its own).
	Commits func(repoURL, sha string) (git.Commit, error)
}

// Serve runs the UI and its API alone, as Argo CD's argocd-server runs
// apart from its application controller: its own caches of every unit,
// whatever shard or label selector the controllers run with. Its actions
// are writes to the units that the controllers carry out.
func Serve(ctx context.Context, cfg *rest.Config, o ServeOptions) error {
	if o.UI.Addr == "" {
		return errors.New("the UI server needs an address")
	}
	s, err := Scheme()
	if err != nil {
		return err
	}
	if o.Logger.GetSink() != nil {
		ctrl.SetLogger(o.Logger)
	}
	skipNames := testing.Testing()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: s, Controller: config.Controller{SkipNameValidation: &skipNames},
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Cache: cache.Options{DefaultTransform: cache.TransformStripManagedFields()}})
	if err != nil {
		return fmt.Errorf("ui server manager: %w", err)
	}
	if err := addUI(ctx, mgr, o.UI, o.Commits); err != nil {
		return fmt.Errorf("ui: %w", err)
	}
	return mgr.Start(ctx)
}

// addUI serves the UI from the manager's caches, on every replica.
func addUI(ctx context.Context, mgr ctrl.Manager, o UIOptions, commits func(repoURL, sha string) (git.Commit, error)) error {
	if o.RBACNamespace == "" {
		o.RBACNamespace = "argocd"
	}
	idx := units.NewIndex()
	err := server.Feed(ctx, mgr.GetCache(), idx)
	if err != nil {
		return err
	}
	so := session.Options{Accounts: o.Accounts, Secure: o.Secure}
	if o.KeySecret.Name != "" {
		if so.HashKey, so.BlockKey, err = sessionKeys(ctx, mgr.GetAPIReader(), mgr.GetClient(), o.KeySecret); err != nil {
			return err
		}
	}
	sessions, err := session.New(so)
	if err != nil {
		return err
	}
	var sso *session.OIDC
	if o.OIDC != nil {
		if sso, err = sessions.NewOIDC(ctx, *o.OIDC); err != nil {
			return err
		}
	}
	// Workloads and Pods for the trees come from a cache of their own that
	// keeps only what health reads: the manager's informers are
	// metadata-only, and full Pods would cost the most memory of all.
	workloads, err := cache.New(mgr.GetConfig(), cache.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
		HTTPClient: mgr.GetHTTPClient(), DefaultTransform: tree.WorkloadTransform})
	if err != nil {
		return fmt.Errorf("ui: workload cache: %w", err)
	}
	if err := mgr.Add(workloads); err != nil {
		return err
	}
	p := &policyLoader{reader: mgr.GetAPIReader(), projects: mgr.GetCache(), log: mgr.GetLogger().WithName("ui-rbac"), key: types.NamespacedName{Namespace: o.RBACNamespace, Name: "argocd-rbac-cm"}}
	h := server.New(server.Options{Commits: commits, Index: idx, Cache: mgr.GetCache(), Workloads: workloads, Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Sessions: sessions, OIDC: sso, Policy: p.get, ControlNamespace: o.RBACNamespace, Recorder: mgr.GetEventRecorderFor("converge-ui")})
	return mgr.Add(&httpServer{name: "ui", addr: o.Addr, handler: h, ready: o.Ready})
}

// policyLoader reads argocd-rbac-cm at most every policyEvery: one
// ConfigMap, not a cache of every ConfigMap in the cluster.
type policyLoader struct {
	reader client.Reader
	// projects lists the AppProjects of key's namespace, whose roles are
	// policy too (Argo CD's projects live there).
	projects client.Reader
	// log says why a policy does not parse and which project role lines
	// were left out; said is what it last said.
	log  logr.Logger
	said string
	key  types.NamespacedName
	mu   sync.Mutex
	at   time.Time
	cur  *rbac.Enforcer
}

const policyEvery = 15 * time.Second

// denyAll is the policy when argocd-rbac-cm does not parse: nobody, the
// built-in admin included, may do anything until it is fixed (the
// built-in roles alone would grant what the broken policy may have meant
// to deny).
var denyAll = rbac.DenyAll()

func (p *policyLoader) get() *rbac.Enforcer {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != nil && time.Since(p.at) < policyEvery {
		return p.cur
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cm := &corev1.ConfigMap{}
	err := p.reader.Get(ctx, p.key, cm)
	switch {
	case apierrors.IsNotFound(err):
		cm.Data = nil // Argo CD's default: the built-in roles only
	case err != nil:
		if p.cur != nil {
			return p.cur // the API server is away: keep the last one read
		}
		return denyAll
	}
	projects := &v1alpha1.AppProjectList{}
	if err := p.projects.List(ctx, projects, client.InNamespace(p.key.Namespace)); err != nil && p.cur != nil {
		return p.cur
	}
	pol, err := policyOf(cm.Data, projects.Items)
	e := denyAll
	if err == nil {
		if e, err = rbac.New(pol); err != nil {
			e = denyAll
		}
	}
	// Each problem is logged once, when it appears, not every load.
	said := fmt.Sprint(err) + strings.Join(e.Ignored(), "; ")
	if said != p.said {
		p.said = said
		if err != nil {
			p.log.Error(err, "argocd-rbac-cm does not parse: the UI and API refuse everyone", "configMap", p.key)
		}
		if len(e.Ignored()) > 0 {
			p.log.Info("AppProject role lines left out of the UI's RBAC", "lines", e.Ignored())
		}
	}
	p.cur, p.at = e, time.Now()
	return e
}

// policyOf reads argocd-rbac-cm's data as Argo CD does: policy.csv, then
// every policy.<name>.csv overlay (by name), policy.default,
// policy.matchMode and scopes; and the roles of projects.
func policyOf(data map[string]string, projects []v1alpha1.AppProject) (rbac.Policy, error) {
	p := rbac.Policy{CSV: data["policy.csv"], Default: data["policy.default"], MatchMode: data["policy.matchMode"]}
	var overlays []string
	for k := range data {
		if strings.HasPrefix(k, "policy.") && strings.HasSuffix(k, ".csv") && k != "policy.csv" {
			overlays = append(overlays, k)
		}
	}
	sort.Strings(overlays)
	for _, k := range overlays {
		p.CSV += "\n" + data[k]
	}
	if s := strings.TrimSpace(data["scopes"]); s != "" {
		if err := yaml.Unmarshal([]byte(s), &p.Scopes); err != nil {
			return p, fmt.Errorf("argocd-rbac-cm scopes %q: want a list such as [groups, email]: %w", s, err)
		}
	}
	for _, proj := range projects {
		for _, r := range proj.Spec.Roles {
			p.ProjectRoles = append(p.ProjectRoles, rbac.ProjectRole{Project: proj.Name, Name: r.Name, Policies: r.Policies, Groups: r.Groups})
		}
	}
	return p, nil
}

// sessionKeys reads the session keys from Secret key, making it with
// random keys if it does not exist; replicas racing to make it all end
// with the one that was made first.
func sessionKeys(ctx context.Context, reader client.Reader, writer client.Client, key types.NamespacedName) (hash, block []byte, err error) {
	for range 2 {
		sec := &corev1.Secret{}
		err := reader.Get(ctx, key, sec)
		if err == nil {
			hash, block = sec.Data["hashKey"], sec.Data["blockKey"]
			if len(hash) != 64 || len(block) != 32 {
				return nil, nil, fmt.Errorf("session keys: Secret %s: hashKey must be 64 bytes and blockKey 32", key)
			}
			return hash, block, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, nil, fmt.Errorf("session keys: Secret %s: %w", key, err)
		}
		sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
			Data: map[string][]byte{"hashKey": securecookie.GenerateRandomKey(64), "blockKey": securecookie.GenerateRandomKey(32)}}
		if err := writer.Create(ctx, sec); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, nil, fmt.Errorf("session keys: create Secret %s: %w", key, err)
		}
	}
	return nil, nil, fmt.Errorf("session keys: Secret %s: made but not readable", key)
}
