package engine

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"converge.dev/converge/internal/plan"
)

// recorder watches kinds in a namespace and records, in order, each
// object's creation ("Kind/name") and milestones: "Job/name done",
// "Job/name failed", "Deployment/name available".
type recorder struct {
	mu   sync.Mutex
	seen []string
	once map[string]bool
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.once[s] {
		r.once[s] = true
		r.seen = append(r.seen, s)
	}
}

func (r *recorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func (e *env) record(ctx context.Context, gvrs ...schema.GroupVersionResource) *recorder {
	e.t.Helper()
	r := &recorder{once: map[string]bool{}}
	for _, gvr := range gvrs {
		w, err := e.dyn.Resource(gvr).Namespace(e.ns).Watch(ctx, metav1.ListOptions{})
		if err != nil {
			e.t.Fatal(err)
		}
		go func() {
			defer w.Stop()
			for ev := range w.ResultChan() {
				o, ok := ev.Object.(*unstructured.Unstructured)
				if !ok || ev.Type == watch.Deleted || o.GetName() == "kube-root-ca.crt" || o.GetName() == "default" {
					continue
				}
				name := o.GetKind() + "/" + o.GetName()
				if strings.HasPrefix(o.GetName(), "notify-") {
					name = o.GetKind() + "/notify-*"
				}
				r.add(name)
				switch o.GetKind() {
				case "Job":
					if n, _, _ := unstructured.NestedInt64(o.Object, "status", "succeeded"); n > 0 {
						r.add(name + " done")
					}
					if n, _, _ := unstructured.NestedInt64(o.Object, "status", "failed"); n > 0 {
						r.add(name + " failed")
					}
				case "Deployment":
					if n, _, _ := unstructured.NestedInt64(o.Object, "status", "availableReplicas"); n > 0 {
						r.add(name + " available")
					}
				}
			}
		}()
	}
	return r
}

var hookKinds = []schema.GroupVersionResource{
	{Version: "v1", Resource: "resourcequotas"}, {Version: "v1", Resource: "limitranges"},
	{Version: "v1", Resource: "configmaps"}, {Version: "v1", Resource: "secrets"},
	{Version: "v1", Resource: "serviceaccounts"}, {Version: "v1", Resource: "services"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"},
	{Group: "batch", Version: "v1", Resource: "jobs"},
}

// publishIngressAddress plays the ingress controller: it gives every
// Ingress in the namespace an address once it appears, which is what
// makes an Ingress Healthy.
func (e *env) publishIngressAddress(ctx context.Context) {
	gvr := schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"}
	w, err := e.dyn.Resource(gvr).Namespace(e.ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			o, ok := ev.Object.(*unstructured.Unstructured)
			if !ok || ev.Type != watch.Added {
				continue
			}
			patch := []byte(`{"status":{"loadBalancer":{"ingress":[{"ip":"127.0.0.1"}]}}}`)
			_, _ = e.dyn.Resource(gvr).Namespace(e.ns).Patch(ctx, o.GetName(), "application/merge-patch+json", patch, metav1.PatchOptions{}, "status")
		}
	}()
}

// rank places each recorded event in the seed's §3.3 order, hooks
// around it; events of one rank may come in any order.
var hookRank = map[string]int{
	"Job/migrate": 0, "Job/migrate done": 1, "Job/migrate failed": 1,
	"ResourceQuota/quota": 2, "LimitRange/limits": 2,
	"ConfigMap/config": 3, "Secret/creds": 3,
	"ServiceAccount/orders-api": 4, "Role/orders-api": 4, "RoleBinding/orders-api": 4,
	"Service/orders-api":    5,
	"Deployment/orders-api": 6, "Deployment/orders-api available": 7,
	"Ingress/orders-api": 8,
	"Job/smoke-test":     9, "Job/smoke-test done": 10,
	"Job/notify-*": 11, "Job/notify-* done": 12,
	"Job/sync-failed": 13, "Job/sync-failed done": 14,
}

// TestSeedWaveTableWithHooks: the seed's §3.3 wave table is applied in
// order with a health gate between waves, the PreSync hook runs before
// everything and is deleted once it succeeded (HookSucceeded), the
// PostSync hook runs last, and SyncFail does not run at all. Hooks stay
// out of the status and the inventory.
func TestSeedWaveTableWithHooks(t *testing.T) {
	e := newEnv(t, "hooks")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.publishIngressAddress(ctx)
	rec := e.record(ctx, hookKinds...)

	sctx, scancel := context.WithTimeout(ctx, 2*time.Minute)
	defer scancel()
	rep, err := e.eng.Sync(sctx, e.unit, SyncOptions{Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the last watch events
	got := rec.events()
	want := []string{"Job/migrate", "Job/migrate done", "ResourceQuota/quota", "LimitRange/limits", "ConfigMap/config",
		"Secret/creds", "ServiceAccount/orders-api", "Role/orders-api", "RoleBinding/orders-api", "Service/orders-api",
		"Deployment/orders-api", "Deployment/orders-api available", "Ingress/orders-api", "Job/smoke-test",
		"Job/smoke-test done", "Job/notify-*", "Job/notify-* done"}
	checkOrder(t, got, want)

	if _, err := e.cs.BatchV1().Jobs(e.ns).Get(ctx, "migrate", metav1.GetOptions{}); err == nil {
		t.Error("PreSync Job migrate is still there; its policy HookSucceeded deletes it")
	}
	if len(rep.Hooks) != 2 || rep.Hooks[0].Phase != plan.PreSync || !rep.Hooks[0].Deleted || rep.Hooks[1].Phase != plan.PostSync || rep.Hooks[1].Deleted {
		t.Errorf("hook results %+v, want PreSync (deleted) then PostSync (kept)", rep.Hooks)
	}
	st, err := e.eng.Status(ctx, e.unit)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range st.Objects {
		if strings.HasPrefix(o.Ref.Name, "notify-") || o.Ref.Name == "migrate" || o.Ref.Name == "sync-failed" {
			t.Errorf("hook %s is in the status", o.Ref)
		}
	}
	if !st.Synced {
		t.Errorf("unit not Synced after the sync: %+v", st.Objects)
	}

	// A second sync runs the hooks again: PostSync's generateName makes a
	// new Job, and nothing the first sync left is pruned.
	if _, err := e.eng.Sync(sctx, e.unit, SyncOptions{Wait: true, Prune: true}); err != nil {
		t.Fatal(err)
	}
	jobs, err := e.cs.BatchV1().Jobs(e.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	notify := 0
	for _, j := range jobs.Items {
		if strings.HasPrefix(j.Name, "notify-") {
			notify++
		}
	}
	if notify != 2 {
		t.Errorf("%d notify Jobs after two syncs, want 2 (hooks are not pruned)", notify)
	}
}

// TestFailingPreSyncRunsSyncFail: a PreSync hook that fails stops the
// sync before any wave is applied, and the SyncFail hook runs.
func TestFailingPreSyncRunsSyncFail(t *testing.T) {
	e := newEnv(t, "hooks")
	all, err := os.ReadFile("testdata/hooks/all.yaml")
	if err != nil {
		t.Fatal(err)
	}
	failing := strings.Replace(string(all), "    spec:\n      restartPolicy: Never\n      containers: [{name: migrate",
		"    metadata: {annotations: {sim.converge.dev/state: Failed}}\n    spec:\n      restartPolicy: Never\n      containers: [{name: migrate", 1)
	if failing == string(all) {
		t.Fatal("fixture changed: cannot make migrate fail")
	}
	e.repo.Commit("migration fails", map[string]string{"hooks/all.yaml": failing})
	e.repo.Publish()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := e.record(ctx, hookKinds...)

	sctx, scancel := context.WithTimeout(ctx, 2*time.Minute)
	defer scancel()
	rep, err := e.eng.Sync(sctx, e.unit, SyncOptions{Wait: true})
	if err == nil || !strings.Contains(err.Error(), "PreSync hook Job.batch/"+e.ns+"/migrate failed") {
		t.Fatalf("got %v, want the PreSync hook named as failed", err)
	}
	time.Sleep(300 * time.Millisecond)
	checkOrder(t, rec.events(), []string{"Job/migrate", "Job/migrate failed", "Job/sync-failed", "Job/sync-failed done"})
	for _, ev := range rep.Events {
		if ev.Action != plan.Hook {
			t.Errorf("%s %s was applied after the PreSync hook failed", ev.Action, ev.Ref)
		}
	}
	// The failed hook is kept for inspection: its policy is HookSucceeded.
	if _, err := e.cs.BatchV1().Jobs(e.ns).Get(ctx, "migrate", metav1.GetOptions{}); err != nil {
		t.Errorf("failed PreSync Job: %v; HookSucceeded keeps a failed hook", err)
	}
	hooks := rep.Hooks
	if len(hooks) != 2 || hooks[0].Succeeded || hooks[1].Phase != plan.SyncFail || !hooks[1].Succeeded {
		t.Errorf("hook results %+v, want PreSync failed then SyncFail succeeded", hooks)
	}
}

// checkOrder fails unless got holds exactly want's events, each in a
// rank no lower than the one before.
func checkOrder(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("observed %v\nwant (up to order within a wave) %v", got, want)
	}
	set := map[string]bool{}
	for _, w := range want {
		set[w] = true
	}
	last := -1
	for _, g := range got {
		r, ok := hookRank[g]
		if !ok || !set[g] {
			t.Fatalf("unexpected %q in %v", g, got)
		}
		if r < last {
			t.Fatalf("%q came after a later wave: %v", g, got)
		}
		last = r
	}
}
