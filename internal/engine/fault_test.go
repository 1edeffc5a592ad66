package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/localcluster"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
)

// errKilled is what every request gets once the simulated process died.
var errKilled = errors.New("simulated SIGKILL: the process is gone")

// dyingTransport passes the first budget requests to the server and
// fails every later one before it is sent: from the API server's point of
// view, exactly what a process killed at that moment leaves behind.
// Counting requests makes the kill point deterministic.
type dyingTransport struct {
	next   http.RoundTripper
	budget int64
	sent   atomic.Int64
}

func (d *dyingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if n := d.sent.Add(1); d.budget >= 0 && n > d.budget {
		return nil, errKilled
	}
	return d.next.RoundTrip(r)
}

// process is one run of converge: a fresh engine (no memory of earlier
// runs) on a client that dies after budget requests (-1: never). The Git
// cache on disk survives, as it does across a real restart.
func (e *env) process(budget int64) (*Engine, *dyingTransport) {
	e.t.Helper()
	cfg := rest.CopyConfig(clustertest.RESTConfig(e.t))
	d := &dyingTransport{budget: budget}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { d.next = rt; return d })
	cfg.QPS, cfg.Burst = 500, 1000
	c, err := cluster.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return New(Options{Fetcher: e.eng.o.Fetcher, Cluster: c}), d
}

// fresh is a new process that is never killed.
func (e *env) fresh() *Engine {
	eng, _ := e.process(-1)
	return eng
}

// configMaps writes n ConfigMaps named prefix-i, i from lo to hi-1.
func configMaps(prefix string, lo, hi int, value string) string {
	var b strings.Builder
	for i := lo; i < hi; i++ {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s-%02d\n  annotations: {argocd.argoproj.io/sync-wave: %q}\ndata: {v: %q}\n",
			prefix, i, fmt.Sprint(i%3), value)
	}
	return b.String()
}

// owned lists the ConfigMaps in the namespace that carry the unit's owner
// annotation: what a user would find left behind.
func (e *env) owned() []string {
	e.t.Helper()
	list, err := e.cs.CoreV1().ConfigMaps(e.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, cm := range list.Items {
		if cm.Annotations[plan.OwnerAnnotation] == e.unit.Name {
			out = append(out, cm.Name)
		}
	}
	sort.Strings(out)
	return out
}

// TestKilledSyncLeavesNothingUnfindable kills converge at 12 points spread
// over a sync of a new revision (revision B adds 20 ConfigMaps to A's 30
// and changes them all), then lets a new process sync revision C, which
// keeps 5, with prune. Whatever the kill point, exactly C's 5 must be
// left: nothing the killed sync applied may escape the inventory.
func TestKilledSyncLeavesNothingUnfindable(t *testing.T) {
	e := newEnv(t, "fault")
	revA := configMaps("cm", 0, 30, "a")
	revB := configMaps("cm", 0, 50, "b")
	revC := configMaps("cm", 0, 5, "c")
	publish := func(content string) {
		e.repo.Commit("rev", map[string]string{"fault/all.yaml": content})
		e.repo.Publish()
	}
	syncWith := func(eng *Engine) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		// The budget would hold these prunes: this test is about the
		// inventory, TestPathRestructuringIsHeld about the budget.
		_, err := eng.Sync(ctx, e.unit, SyncOptions{Prune: true, Wait: true, Budget: plan.Budget{Off: true}})
		return err
	}
	wantC := []string{"cm-00", "cm-01", "cm-02", "cm-03", "cm-04"}

	// An unkilled run of B measures how many requests a sync makes.
	publish(revA)
	if err := syncWith(e.eng); err != nil {
		t.Fatal(err)
	}
	publish(revB)
	eng, d := e.process(-1)
	if err := syncWith(eng); err != nil {
		t.Fatal(err)
	}
	total := d.sent.Load()
	t.Logf("a whole sync of revision B makes %d API requests", total)

	const points = 12
	for i := 0; i < points; i++ {
		kill := 1 + int64(i)*(total-1)/(points-1)
		publish(revA)
		if err := syncWith(e.fresh()); err != nil {
			t.Fatalf("kill point %d: back to A: %v", kill, err)
		}
		publish(revB)
		eng, _ := e.process(kill)
		err := syncWith(eng)
		if kill < total && err == nil {
			t.Errorf("kill after %d of %d requests: the sync did not notice", kill, total)
		}
		if err != nil && strings.Contains(err.Error(), plantedToken) {
			t.Errorf("kill after %d requests: the error shows the token: %v", kill, err)
		}
		publish(revC)
		if err := syncWith(e.fresh()); err != nil {
			t.Fatalf("kill point %d: sync of C after the kill: %v", kill, err)
		}
		if got := e.owned(); strings.Join(got, ",") != strings.Join(wantC, ",") {
			t.Errorf("killed after %d of %d requests: left %d ConfigMaps %v, want %v", kill, total, len(got), got, wantC)
		}
	}
}

// TestDegradedWaveThenRemoval: revision B adds a ConfigMap and a Job that
// fails in wave 1, so the sync stops; revision C removes both from Git.
// Prune must delete both, since B applied them.
func TestDegradedWaveThenRemoval(t *testing.T) {
	e := newEnv(t, "degraded")
	e.repo.Commit("A", map[string]string{"degraded/keep.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\n"})
	e.repo.Publish()
	e.sync(SyncOptions{Prune: true, Wait: true})

	e.repo.Commit("B", map[string]string{"degraded/more.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: added}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: broken
  annotations: {argocd.argoproj.io/sync-wave: "1"}
spec:
  backoffLimit: 0
  template:
    metadata: {annotations: {sim.converge.dev/state: Failed}}
    spec:
      restartPolicy: Never
      containers: [{name: m, image: example/broken:1}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: never-reached
  annotations: {argocd.argoproj.io/sync-wave: "2"}
`})
	e.repo.Publish()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.eng.Sync(ctx, e.unit, SyncOptions{Prune: true, Wait: true}); err == nil || !strings.Contains(err.Error(), "Degraded") {
		t.Fatalf("sync of B: got %v, want the Job Degraded", err)
	}
	if got := e.owned(); strings.Join(got, ",") != "added,keep" {
		t.Fatalf("after B: %v", got)
	}

	e.repo.Commit("C", map[string]string{"degraded/more.yaml": ""})
	e.repo.Publish()
	// Also after a restart, which forgets all memory.
	if _, err := e.fresh().Sync(context.Background(), e.unit, SyncOptions{Prune: true, Wait: true}); err != nil {
		t.Fatal(err)
	}
	if got := e.owned(); strings.Join(got, ",") != "keep" {
		t.Errorf("after C: ConfigMaps %v, want only keep", got)
	}
	if _, err := e.cs.BatchV1().Jobs(e.ns).Get(context.Background(), "broken", metav1.GetOptions{}); err == nil {
		t.Error("the Job of the failed sync was not pruned")
	}
}

// TestPathRestructuringIsHeld: all but one of a unit's 200 files move
// into a sub-folder the unit does not read (seed §17.4, "path
// restructuring"). The prune is held, the rest applied, and the held
// prune goes ahead only once approved after the hold began.
func TestPathRestructuringIsHeld(t *testing.T) {
	e := newEnv(t, "flat")
	e.unit.Render.Recurse = false
	e.repo.Commit("200", map[string]string{"flat/all.yaml": configMaps("cm", 0, 200, "a")})
	e.repo.Publish()
	e.sync(SyncOptions{Prune: true})
	if n := len(e.owned()); n != 200 {
		t.Fatalf("%d ConfigMaps after the first sync", n)
	}

	e.repo.Commit("restructure", map[string]string{
		"flat/all.yaml":     configMaps("cm", 0, 1, "b"),
		"flat/moved/x.yaml": configMaps("cm", 1, 200, "b"),
	})
	e.repo.Publish()
	early := time.Now().Add(-time.Hour) // an approval older than the hold
	rep, err := e.eng.Sync(context.Background(), e.unit, SyncOptions{Prune: true, Budget: plan.Budget{Approved: early}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Plan.Held == nil || len(rep.Plan.Held.Refs) != 199 {
		t.Fatalf("held: %+v, want 199 objects held", rep.Plan.Held)
	}
	if msg := rep.Plan.Held.Message("flat"); !strings.Contains(msg, `path "flat" now renders 1 objects where the unit owns 200`) {
		t.Errorf("message: %s", msg)
	}
	if n := len(e.owned()); n != 200 {
		t.Errorf("%d ConfigMaps left while the prune is held, want 200", n)
	}
	if e.configMap("cm-00")["v"] != "b" {
		t.Error("the rest of the sync was not applied")
	}
	inv, _ := e.eng.o.Cluster.LoadInventory(context.Background(), e.unit.Name)
	if inv.PruneHeldSince == nil || len(inv.Objects) != 200 {
		t.Fatalf("inventory while held: since %v, %d objects", inv.PruneHeldSince, len(inv.Objects))
	}

	// A resync, even by a new process, keeps holding.
	if rep, err := e.fresh().Sync(context.Background(), e.unit, SyncOptions{Prune: true}); err != nil || rep.Plan.Held == nil {
		t.Fatalf("resync: held %v, %v", rep.Plan.Held, err)
	}
	// Approved after the hold began: it goes ahead.
	rep, err = e.fresh().Sync(context.Background(), e.unit, SyncOptions{Prune: true, Budget: plan.Budget{Approved: inv.PruneHeldSince.Add(time.Second)}})
	if err != nil || rep.Plan.Held != nil {
		t.Fatalf("approved sync: held %v, %v", rep.Plan.Held, err)
	}
	if got := e.owned(); len(got) != 1 {
		t.Errorf("after approval: %d ConfigMaps, want 1", len(got))
	}
	inv, _ = e.fresh().o.Cluster.LoadInventory(context.Background(), e.unit.Name)
	if inv.PruneHeldSince != nil || len(inv.Objects) != 1 {
		t.Errorf("inventory after the approved prune: since %v, %d objects", inv.PruneHeldSince, len(inv.Objects))
	}
}

// TestHandMadeObjectIsNotAdopted: a ConfigMap made by hand with the name
// of one in Git is a conflict, left as it is; once adopted on request it
// is updated, and when its file leaves Git it stays.
func TestHandMadeObjectIsNotAdopted(t *testing.T) {
	e := newEnv(t, "adopt")
	ctx := context.Background()
	_, err := e.cs.CoreV1().ConfigMaps(e.ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"mode": "by-hand"}},
		metav1.CreateOptions{FieldManager: "kubectl-create"})
	if err != nil {
		t.Fatal(err)
	}
	e.repo.Commit("settings", map[string]string{"adopt/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: git}\n" +
		"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n"})
	e.repo.Publish()
	rep := e.sync(SyncOptions{Prune: true})
	var reason string
	for _, s := range rep.Plan.Steps {
		if s.Ref.Name == "settings" {
			if s.Action != plan.Conflict {
				t.Fatalf("hand-made object: %s, want a conflict", s.Action)
			}
			reason = s.Reason
		}
	}
	if !strings.Contains(reason, `created by "kubectl-create"`) {
		t.Errorf("reason %q does not name who made it", reason)
	}
	cm, _ := e.cs.CoreV1().ConfigMaps(e.ns).Get(ctx, "settings", metav1.GetOptions{})
	if cm.Data["mode"] != "by-hand" || cm.Annotations[plan.OwnerAnnotation] != "" {
		t.Errorf("the hand-made object was changed: %v %v", cm.Data, cm.Annotations)
	}

	// Adopting takes over the fields kubectl-create set: that needs
	// force, as any server-side apply over another manager does.
	e.sync(SyncOptions{Prune: true, Adopt: true})
	cm, _ = e.cs.CoreV1().ConfigMaps(e.ns).Get(ctx, "settings", metav1.GetOptions{})
	if cm.Data["mode"] != "git" || cm.Annotations[plan.AdoptedAnnotation] != e.unit.Name {
		t.Errorf("after adopting: %v %v", cm.Data, cm.Annotations)
	}
	if got := actions(e.sync(SyncOptions{Prune: true})); got != "" {
		t.Errorf("resync after adoption: %s, want nothing", got)
	}

	e.repo.Commit("drop", map[string]string{"adopt/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n"})
	e.repo.Publish()
	e.sync(SyncOptions{Prune: true})
	if _, err := e.cs.CoreV1().ConfigMaps(e.ns).Get(ctx, "settings", metav1.GetOptions{}); err != nil {
		t.Errorf("the adopted object was pruned: %v", err)
	}
}

// TestInventoryLostObjectsArePruned: objects the unit applied but its
// inventory lost (written by an older version, or a failed write) are
// found by their owner annotation on the next revision and pruned;
// another unit's object of the same kind is never touched.
func TestInventoryLostObjectsArePruned(t *testing.T) {
	e := newEnv(t, "lost")
	ctx := context.Background()
	e.repo.Commit("A", map[string]string{"lost/all.yaml": configMaps("cm", 0, 4, "a")})
	e.repo.Publish()
	e.sync(SyncOptions{Prune: true})
	// Another unit's ConfigMap in the same namespace.
	_, err := e.cs.CoreV1().ConfigMaps(e.ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "theirs",
		Annotations: map[string]string{plan.OwnerAnnotation: "someone-else"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The inventory forgets two of them.
	inv, _ := e.eng.o.Cluster.LoadInventory(ctx, e.unit.Name)
	inv.Objects = inv.Objects[:2]
	if err := e.eng.o.Cluster.SaveInventory(ctx, inv); err != nil {
		t.Fatal(err)
	}
	e.repo.Commit("B", map[string]string{"lost/all.yaml": configMaps("cm", 0, 1, "b")})
	e.repo.Publish()
	if _, err := e.fresh().Sync(ctx, e.unit, SyncOptions{Prune: true, Budget: plan.Budget{Off: true}}); err != nil {
		t.Fatal(err)
	}
	if got := e.owned(); strings.Join(got, ",") != "cm-00" {
		t.Errorf("left %v, want only cm-00", got)
	}
	if _, err := e.cs.CoreV1().ConfigMaps(e.ns).Get(ctx, "theirs", metav1.GetOptions{}); err != nil {
		t.Errorf("another unit's ConfigMap was touched: %v", err)
	}
}

// TestBrokenSourcePrunesNothing: with prune on, a source that moved, lost
// the branch the unit follows, or was emptied makes the sync fail, and
// every object the unit owns stays.
func TestBrokenSourcePrunesNothing(t *testing.T) {
	e := newEnv(t, "src")
	e.unit.Revision = "branch:release"
	e.repo.Commit("A", map[string]string{"src/all.yaml": configMaps("cm", 0, 5, "a"), "src/README.md": "# orders\n"})
	e.repo.Branch("release")
	e.repo.Publish()
	e.sync(SyncOptions{Prune: true})
	want := "cm-00,cm-01,cm-02,cm-03,cm-04"
	check := func(what string, err error, wantErr string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: got %v, want an error containing %q", what, err, wantErr)
		}
		if err != nil && strings.Contains(err.Error(), plantedToken) {
			t.Errorf("%s: the error shows the token: %v", what, err)
		}
		if got := strings.Join(e.owned(), ","); got != want {
			t.Errorf("%s: left %s, want %s", what, got, want)
		}
	}
	ctx := context.Background()

	// Moved: the URL answers 404.
	if err := os.Rename(e.repo.Bare, e.repo.Bare+".moved"); err != nil {
		t.Fatal(err)
	}
	_, err := e.fresh().Sync(ctx, e.unit, SyncOptions{Prune: true})
	check("repository moved", err, "source unreachable")
	if err := os.Rename(e.repo.Bare+".moved", e.repo.Bare); err != nil {
		t.Fatal(err)
	}

	// The branch is deleted on the remote.
	bare, err := gogit.PlainOpen(e.repo.Bare)
	if err != nil {
		t.Fatal(err)
	}
	if err := bare.Storer.RemoveReference(plumbing.NewBranchReferenceName("release")); err != nil {
		t.Fatal(err)
	}
	_, err = e.fresh().Sync(ctx, e.unit, SyncOptions{Prune: true})
	check("branch deleted", err, "revision not found")

	// The folder is emptied on the branch.
	e.repo.Commit("empty", map[string]string{"src/all.yaml": ""})
	e.repo.Branch("release")
	e.repo.Publish()
	_, err = e.fresh().Sync(ctx, e.unit, SyncOptions{Prune: true})
	check("folder emptied", err, "render is empty")

	// The folder is gone (a wrong path after a restructuring).
	e.repo.Commit("gone", map[string]string{"src/README.md": ""})
	e.repo.Branch("release")
	e.repo.Publish()
	_, err = e.fresh().Sync(ctx, e.unit, SyncOptions{Prune: true})
	check("folder deleted", err, "does not exist")
}

// stoppingTransport stops the API server itself when the sync reaches
// its request number at (85: after every object of wave 0, new ones
// included, was applied): that request and every later one fail, as they
// do when the server goes down mid-sync.
type stoppingTransport struct {
	next http.RoundTripper
	at   int64
	sent atomic.Int64
	stop func()
}

func (s *stoppingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if s.sent.Add(1) == s.at {
		s.stop()
	}
	return s.next.RoundTrip(r)
}

// TestAPIServerRestartMidSync stops a cluster's API server (and its
// etcd) in the middle of a sync of a new revision, starts it again on
// the same data, and syncs the next revision with prune: exactly that
// revision's objects must be left.
func TestAPIServerRestartMidSync(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of its own")
	}
	ctx := context.Background()
	dir := t.TempDir()
	o := localcluster.Options{Name: "restart", Dir: dir}
	lc, err := localcluster.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lc.Stop(context.Background()) })
	e := newEnv(t, "restart")
	connect := func(lc *localcluster.Cluster, wrap func(http.RoundTripper) http.RoundTripper) (*Engine, kubernetes.Interface) {
		cfg, err := lc.RESTConfig()
		if err != nil {
			t.Fatal(err)
		}
		cfg.QPS, cfg.Burst = 500, 1000
		cs := kubernetes.NewForConfigOrDie(cfg)
		if wrap != nil {
			cfg.Wrap(wrap)
		}
		c, err := cluster.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return New(Options{Fetcher: e.eng.o.Fetcher, Cluster: c}), cs
	}
	eng, cs := connect(lc, nil)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.cs = cs // e.owned reads this cluster
	opts := SyncOptions{Prune: true, Budget: plan.Budget{Off: true}}
	publish := func(content string) {
		e.repo.Commit("rev", map[string]string{"restart/all.yaml": content})
		e.repo.Publish()
	}
	publish(configMaps("cm", 0, 30, "a"))
	if _, err := eng.Sync(ctx, e.unit, opts); err != nil {
		t.Fatal(err)
	}

	publish(configMaps("cm", 0, 50, "b"))
	st := &stoppingTransport{at: 85, stop: func() {
		if err := lc.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	}}
	dying, _ := connect(lc, func(rt http.RoundTripper) http.RoundTripper { st.next = rt; return st })
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = dying.Sync(sctx, e.unit, opts)
	cancel()
	if err == nil {
		t.Fatalf("the sync did not notice the API server stop (%d requests)", st.sent.Load())
	}
	t.Logf("stopped at request %d of the sync: %v", st.at, err)

	if lc, err = localcluster.Start(ctx, o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lc.Stop(context.Background()) })
	eng, e.cs = connect(lc, nil)
	publish(configMaps("cm", 0, 5, "c"))
	if _, err := eng.Sync(ctx, e.unit, opts); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(e.owned(), ","); got != "cm-00,cm-01,cm-02,cm-03,cm-04" {
		t.Errorf("after the restart and revision C: %s", got)
	}
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// deleteCRDAfter removes a cluster-wide CRD a test made when it ends.
func (e *env) deleteCRDAfter(name string) {
	e.t.Cleanup(func() { e.dyn.Resource(crdGVR).Delete(context.Background(), name, metav1.DeleteOptions{}) })
}

// TestConflictStatusSaysWhy: the status of an object that was not
// applied keeps the reason, even for a kind whose health has a message of
// its own (a CRD: "CRD is healthy" used to replace it).
func TestConflictStatusSaysWhy(t *testing.T) {
	e := newEnv(t, "crdconflict")
	ctx := context.Background()
	crd := `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: sprockets.example.converge.dev}
spec:
  group: example.converge.dev
  scope: Namespaced
  names: {plural: sprockets, kind: Sprocket}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}
`
	objs, err := object.Decode([]byte(crd), "crd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.dyn.Resource(crdGVR).Create(ctx, objs[0].Object, metav1.CreateOptions{FieldManager: "kubectl-create"}); err != nil {
		t.Fatal(err)
	}
	e.deleteCRDAfter("sprockets.example.converge.dev")
	// Established, the CRD has a health message of its own to lose to.
	if err := e.eng.o.Cluster.WaitEstablished(ctx, "sprockets.example.converge.dev"); err != nil {
		t.Fatal(err)
	}
	e.repo.Commit("crd", map[string]string{"crdconflict/crd.yaml": crd})
	e.repo.Publish()
	st, err := e.eng.Status(ctx, e.unit)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Objects) != 1 || st.Objects[0].Sync != "Conflict" || !strings.Contains(st.Objects[0].Message, `created by "kubectl-create"`) {
		t.Errorf("status: %+v", st.Objects)
	}
}

// TestCRDWithResourcesIsNotPruned: a CRD that leaves Git, even one that
// allows its pruning, stays while custom resources of it exist (seed
// §11.2); once they are gone, it is pruned.
func TestCRDWithResourcesIsNotPruned(t *testing.T) {
	e := newEnv(t, "crdprune")
	ctx := context.Background()
	crd := `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.prune.converge.dev
  annotations: {converge.dev/allow-prune: "true"}
spec:
  group: prune.converge.dev
  scope: Namespaced
  names: {plural: widgets, kind: Widget}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}
`
	e.deleteCRDAfter("widgets.prune.converge.dev")
	e.repo.Commit("crd", map[string]string{"crdprune/crd.yaml": crd, "crdprune/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\n"})
	e.repo.Publish()
	e.sync(SyncOptions{Prune: true})
	widgets := e.dyn.Resource(schema.GroupVersionResource{Group: "prune.converge.dev", Version: "v1", Resource: "widgets"}).Namespace(e.ns)
	w, _ := object.Decode([]byte("apiVersion: prune.converge.dev/v1\nkind: Widget\nmetadata: {name: in-use}\n"), "w.yaml")
	if _, err := widgets.Create(ctx, w[0].Object, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	e.repo.Commit("drop the CRD", map[string]string{"crdprune/crd.yaml": ""})
	e.repo.Publish()
	rep := e.sync(SyncOptions{Prune: true, Budget: plan.Budget{Off: true}})
	for _, s := range rep.Plan.Steps {
		if s.Ref.Kind == "CustomResourceDefinition" && (s.Action != plan.Orphan || !strings.Contains(s.Reason, "1 Widget custom resources still exist")) {
			t.Errorf("CRD step: %s %q", s.Action, s.Reason)
		}
	}
	if _, err := e.dyn.Resource(crdGVR).Get(ctx, "widgets.prune.converge.dev", metav1.GetOptions{}); err != nil {
		t.Fatalf("the CRD was pruned with a custom resource of it alive: %v", err)
	}

	if err := widgets.Delete(ctx, "in-use", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rep = e.sync(SyncOptions{Prune: true, Budget: plan.Budget{Off: true}})
	if got := actions(rep); !strings.Contains(got, "prune CustomResourceDefinition/widgets.prune.converge.dev") {
		t.Errorf("once unused: %s, want the CRD pruned", got)
	}
}
