package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/plan"
	"converge.dev/converge/internal/source"
	"converge.dev/converge/internal/source/git"
)

func TestMain(m *testing.M) { clustertest.Main(m, clustertest.Options{Nodes: 1}) }

// env is one test's Git repository, engine and namespace.
type env struct {
	t     *testing.T
	repo  *gittest.Repo
	eng   *Engine
	unit  Unit
	ns    string
	cs    kubernetes.Interface
	dyn   dynamic.Interface
	cache string
}

// plantedToken is the Git server's password, given in every test's
// repository URL, as users do with tokens. After each test it must be
// nowhere converge writes: see scanForToken.
const plantedToken = "ghp_ENGINEt0kenN0tForDisplay"

func newEnv(t *testing.T, path string) *env {
	t.Helper()
	srv := gittest.NewServer(t, "converge", plantedToken)
	repo, url := srv.NewRepo(t, "org/apps.git")
	repo.CopyDir("initial", "testdata", "")
	repo.Publish()
	c, err := cluster.New(clustertest.RESTConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	ns := clustertest.Namespace(t)
	cache := t.TempDir()
	e := &env{
		t: t, repo: repo, ns: ns, cs: clustertest.Clientset(t),
		dyn:   dynamic.NewForConfigOrDie(clustertest.RESTConfig(t)),
		eng:   New(Options{Fetcher: git.New(git.Options{CacheDir: cache}), Cluster: c}),
		unit:  Unit{Name: "u-" + ns, RepoURL: strings.Replace(url, "://", "://converge:"+plantedToken+"@", 1), Path: path, DestNamespace: ns},
		cache: cache,
	}
	t.Cleanup(e.scanForToken)
	return e
}

// scanForToken fails the test if the planted token is in any file of the
// git cache, the unit's inventory, or any object or Event in its
// namespace: after every scenario, faults included.
func (e *env) scanForToken() {
	t := e.t
	ctx := context.Background()
	if !strings.Contains(e.unit.RepoURL, plantedToken) {
		return // a test that moved to a repository of its own
	}
	var files int
	filepath.WalkDir(e.cache, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		files++
		if data, err := os.ReadFile(p); err == nil && bytes.Contains(data, []byte(plantedToken)) {
			t.Errorf("the token is in the git cache: %s", p)
		}
		return nil
	})
	if files == 0 {
		t.Error("the git cache is empty: the scan proves nothing")
	}
	inv, err := e.cs.CoreV1().ConfigMaps(cluster.InventoryNamespace).List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, cm := range inv.Items {
			if data, _ := json.Marshal(cm); bytes.Contains(data, []byte(plantedToken)) {
				t.Errorf("the token is in inventory %s", cm.Name)
			}
		}
	}
	if cms, err := e.cs.CoreV1().ConfigMaps(e.ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, cm := range cms.Items {
			if data, _ := json.Marshal(cm); bytes.Contains(data, []byte(plantedToken)) {
				t.Errorf("the token is in ConfigMap %s", cm.Name)
			}
		}
	}
	if events, err := e.cs.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, ev := range events.Items {
			if strings.Contains(ev.Message, plantedToken) {
				t.Errorf("the token is in Event %s: %s", ev.Name, ev.Message)
			}
		}
	}
}

func (e *env) sync(o SyncOptions) Report {
	e.t.Helper()
	rep, err := e.eng.Sync(context.Background(), e.unit, o)
	if err != nil {
		e.t.Fatal(err)
	}
	if out := fmt.Sprintf("%+v", rep); strings.Contains(out, plantedToken) {
		e.t.Errorf("the sync's report shows the token: %s", out)
	}
	return rep
}

func (e *env) configMap(name string) map[string]string {
	e.t.Helper()
	cm, err := e.cs.CoreV1().ConfigMaps(e.ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	if cm.Annotations[plan.OwnerAnnotation] != e.unit.Name {
		e.t.Errorf("ConfigMap %s: owner %q, want %q", name, cm.Annotations[plan.OwnerAnnotation], e.unit.Name)
	}
	return cm.Data
}

func actions(rep Report) string {
	var s []string
	for _, st := range rep.Plan.Steps {
		if st.Action != plan.Unchanged {
			s = append(s, string(st.Action)+" "+st.Ref.Kind+"/"+st.Ref.Name)
		}
	}
	return strings.Join(s, ", ")
}

func TestSyncUpdatePrune(t *testing.T) {
	e := newEnv(t, "app")
	rep := e.sync(SyncOptions{})
	if got := actions(rep); got != "create ConfigMap/extra, create ConfigMap/settings, create Deployment/web" {
		t.Errorf("first sync: %s", got)
	}
	if e.configMap("settings")["mode"] != "blue" {
		t.Error("settings not applied")
	}
	inv, err := e.eng.o.Cluster.LoadInventory(context.Background(), e.unit.Name)
	if err != nil || len(inv.Objects) != 3 || inv.Revision != rep.Revision {
		t.Errorf("inventory after first sync: %+v, %v", inv, err)
	}

	if got := actions(e.sync(SyncOptions{})); got != "" {
		t.Errorf("resync with no change: %s, want nothing", got)
	}

	e.repo.Commit("green", map[string]string{"app/config.yaml": strings.Replace(readFile(t, "testdata/app/config.yaml"), "blue", "green", 1)})
	e.repo.Publish()
	if got := actions(e.sync(SyncOptions{})); got != "update ConfigMap/settings" {
		t.Errorf("after a change: %s", got)
	}
	if e.configMap("settings")["mode"] != "green" {
		t.Error("settings not updated")
	}

	e.repo.Commit("drop extra", map[string]string{"app/config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: green}\n"})
	e.repo.Publish()
	if got := actions(e.sync(SyncOptions{})); got != "orphan ConfigMap/extra" {
		t.Errorf("file removed, no prune: %s", got)
	}
	if e.configMap("extra") == nil {
		t.Fatal("extra deleted without --prune")
	}
	if got := actions(e.sync(SyncOptions{Prune: true})); got != "prune ConfigMap/extra" {
		t.Errorf("file removed, prune: %s", got)
	}
	if e.configMap("extra") != nil {
		t.Error("extra still exists after prune")
	}
}

// TestPruneTouchesOnlyOwned: objects the unit did not apply, or that
// another unit has taken over, survive a prune.
func TestPruneTouchesOnlyOwned(t *testing.T) {
	e := newEnv(t, "app")
	e.sync(SyncOptions{})
	ctx := context.Background()
	// A hand-made object in the same namespace, and "extra" handed over to
	// another unit.
	hand := map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "handmade", "namespace": e.ns}}
	cms := e.dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace(e.ns)
	if _, err := cms.Create(ctx, &unstructured.Unstructured{Object: hand}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	extra, _ := e.cs.CoreV1().ConfigMaps(e.ns).Get(ctx, "extra", metav1.GetOptions{})
	extra.Annotations[plan.OwnerAnnotation] = "someone-else"
	if _, err := e.cs.CoreV1().ConfigMaps(e.ns).Update(ctx, extra, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.repo.Commit("drop config", map[string]string{"app/config.yaml": ""})
	e.repo.Publish()
	rep := e.sync(SyncOptions{Prune: true})
	if got := actions(rep); got != "prune ConfigMap/settings" {
		t.Errorf("prune plan: %s", got)
	}
	for _, name := range []string{"handmade", "extra"} {
		if _, err := e.cs.CoreV1().ConfigMaps(e.ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("%s: %v (prune touched an object the unit does not own)", name, err)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestCRDAndCustomResourceInOneSync(t *testing.T) {
	e := newEnv(t, "crd")
	rep := e.sync(SyncOptions{})
	if got := actions(rep); !strings.HasPrefix(got, "create CustomResourceDefinition/gadgets.example.converge.dev, create Gadget/first") {
		t.Errorf("plan: %s", got)
	}
	gadgets := schema.GroupVersionResource{Group: "example.converge.dev", Version: "v1", Resource: "gadgets"}
	g, err := e.dyn.Resource(gadgets).Namespace(e.ns).Get(context.Background(), "first", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if size, _, _ := unstructured.NestedInt64(g.Object, "spec", "size"); size != 2 {
		t.Errorf("gadget size: got %d, want 2", size)
	}
	if got := actions(e.sync(SyncOptions{})); got != "" {
		t.Errorf("resync: %s, want nothing", got)
	}
	// The CRD is cluster-scoped and shared: remove it so other tests and
	// runs start clean.
	t.Cleanup(func() {
		e.dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).
			Delete(context.Background(), "gadgets.example.converge.dev", metav1.DeleteOptions{})
	})
}

func TestKustomizeAndHelmSources(t *testing.T) {
	e := newEnv(t, "kustomize/overlay")
	e.sync(SyncOptions{})
	if got := e.configMap("app-config-dev")["env"]; got != "dev" {
		t.Errorf("kustomize overlay: env %q, want dev", got)
	}
	e.unit.Path = "chart"
	e.unit.Name += "-helm"
	e.unit.Render.HelmValues = map[string]any{"greeting": "hi"}
	e.sync(SyncOptions{})
	data := e.configMap("chart-greeting")
	if data["greeting"] != "hi" || !strings.HasPrefix(data["kube"], "v1.37") {
		t.Errorf("helm chart: %v, want greeting hi and the cluster's kube version", data)
	}
}

func TestDiffChangesNothing(t *testing.T) {
	e := newEnv(t, "app")
	rep, err := e.eng.Diff(context.Background(), e.unit, SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Plan.Changes() != 3 || len(rep.Events) != 0 {
		t.Errorf("diff before sync: %d changes, %d events", rep.Plan.Changes(), len(rep.Events))
	}
	if e.configMap("settings") != nil {
		t.Fatal("diff created an object")
	}
	e.sync(SyncOptions{})
	// Drift made by hand shows in the diff.
	ctx := context.Background()
	cm, _ := e.cs.CoreV1().ConfigMaps(e.ns).Get(ctx, "settings", metav1.GetOptions{})
	cm.Data["mode"] = "hand-edited"
	e.cs.CoreV1().ConfigMaps(e.ns).Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"})
	rep, err = e.eng.Diff(ctx, e.unit, SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rep); got != "update ConfigMap/settings" {
		t.Errorf("diff after a hand edit: %s", got)
	}
	for _, s := range rep.Plan.Steps {
		if s.Ref.Name == "settings" && !strings.Contains(s.Diff, "-  mode: hand-edited") {
			t.Errorf("diff text:\n%s", s.Diff)
		}
	}
}

// TestFailuresApplyNothing: a bad render, an invalid object, an
// unreachable source, an empty render and a conflict never delete or
// half-apply anything.
func TestFailuresApplyNothing(t *testing.T) {
	e := newEnv(t, "app")
	e.sync(SyncOptions{Prune: true})
	ctx := context.Background()
	snapshot := func() string {
		list, _ := e.cs.CoreV1().ConfigMaps(e.ns).List(ctx, metav1.ListOptions{})
		var s []string
		for _, c := range list.Items {
			s = append(s, fmt.Sprintf("%s=%v", c.Name, c.Data))
		}
		return strings.Join(s, " ")
	}
	before := snapshot()

	t.Run("render error", func(t *testing.T) {
		e.repo.Commit("broken yaml", map[string]string{"app/broken.yaml": "apiVersion: v1\nkind: [oops\n"})
		e.repo.Publish()
		_, err := e.eng.Sync(ctx, e.unit, SyncOptions{Prune: true})
		if err == nil || !strings.Contains(err.Error(), "app/broken.yaml: document 1") {
			t.Errorf("got %v, want an error naming app/broken.yaml", err)
		}
		e.repo.Commit("fix", map[string]string{"app/broken.yaml": ""})
	})

	t.Run("validation error on one object", func(t *testing.T) {
		e.repo.Commit("bad replicas", map[string]string{
			"app/new.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: would-be-new}\n",
			"app/web.yaml": strings.Replace(readFile(t, "testdata/app/web.yaml"), "replicas: 1", "replicas: -3", 1),
		})
		e.repo.Publish()
		_, err := e.eng.Sync(ctx, e.unit, SyncOptions{Prune: true})
		if err == nil || !strings.Contains(err.Error(), "app/web.yaml") || !strings.Contains(err.Error(), "spec.replicas") {
			t.Errorf("got %v, want an error naming app/web.yaml and spec.replicas", err)
		}
		e.repo.Commit("fix", map[string]string{"app/new.yaml": "", "app/web.yaml": readFile(t, "testdata/app/web.yaml")})
		e.repo.Publish()
	})

	t.Run("unreachable source", func(t *testing.T) {
		u := e.unit
		u.RepoURL = "http://127.0.0.1:1/org/apps.git"
		_, err := e.eng.Sync(ctx, u, SyncOptions{Prune: true})
		if !errors.Is(err, source.ErrUnreachable) {
			t.Errorf("got %v, want ErrUnreachable", err)
		}
	})

	t.Run("empty render", func(t *testing.T) {
		e.repo.RemoveAll("empty the folder", "app")
		e.repo.Commit("keep folder", map[string]string{"app/README.md": "nothing here\n"})
		e.repo.Publish()
		_, err := e.eng.Sync(ctx, e.unit, SyncOptions{Prune: true})
		if !errors.Is(err, ErrEmptyRender) {
			t.Errorf("got %v, want ErrEmptyRender", err)
		}
	})

	if after := snapshot(); after != before {
		t.Errorf("a failed sync changed the namespace:\nbefore %s\nafter  %s", before, after)
	}

	t.Run("allow empty prunes", func(t *testing.T) {
		e.sync(SyncOptions{Prune: true, AllowEmpty: true})
		if e.configMap("settings") != nil {
			t.Error("settings survived an allowed empty sync")
		}
	})
}

func TestConflictWithAnotherUnit(t *testing.T) {
	e := newEnv(t, "app")
	e.sync(SyncOptions{})
	other := e.unit
	other.Name = e.unit.Name + "-other"
	rep, err := e.eng.Sync(context.Background(), other, SyncOptions{Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rep); got != "conflict ConfigMap/extra, conflict ConfigMap/settings, conflict Deployment/web" {
		t.Errorf("second unit: %s", got)
	}
	if e.configMap("settings")["mode"] != "blue" {
		t.Error("first unit's object changed")
	}
}

// TestSyncOverSSH syncs from the same kind of server over ssh, with a key
// and known_hosts.
func TestSyncOverSSH(t *testing.T) {
	e := newEnv(t, "app")
	srv := gittest.NewServer(t, "", "")
	base, knownHosts := srv.SSH(t)
	repo := gittest.NewRepo(t, srv.Root()+"/org/apps.git")
	repo.CopyDir("initial", "testdata", "")
	repo.Publish()
	e.unit.RepoURL = base + "/org/apps.git"
	e.unit.Auth = git.Auth{SSHKey: gittest.ClientKey(t), KnownHosts: []byte(knownHosts)}
	rep := e.sync(SyncOptions{})
	if rep.Plan.Changes() != 3 || e.configMap("settings")["mode"] != "blue" {
		t.Errorf("sync over ssh: %s", actions(rep))
	}
}

// TestMissingNamespace: a diff shows objects bound for a namespace that
// does not exist as to be created; a sync refuses before applying any.
func TestMissingNamespace(t *testing.T) {
	e := newEnv(t, "app")
	e.unit.DestNamespace = e.ns + "-absent"
	rep, err := e.eng.Diff(context.Background(), e.unit, SyncOptions{})
	if err != nil || rep.Plan.Changes() != 3 {
		t.Fatalf("diff: %d changes, %v", rep.Plan.Changes(), err)
	}
	_, err = e.eng.Sync(context.Background(), e.unit, SyncOptions{})
	if err == nil || !strings.Contains(err.Error(), `namespace "`+e.unit.DestNamespace+`" does not exist`) {
		t.Errorf("sync into a missing namespace: got %v", err)
	}
}
