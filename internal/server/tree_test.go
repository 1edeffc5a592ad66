package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/server"
	"converge.dev/converge/internal/tree"
	"converge.dev/converge/internal/units"
)

// TestFluxTrees: a HelmRelease's and a Kustomization's pages show what
// their inventories list, each workload with its health and its
// ReplicaSets and Pods under it (read from the workload cache, not the
// API server), and a release that recorded nothing yet says so.
func TestFluxTrees(t *testing.T) {
	w := start(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	docs := strings.ReplaceAll(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: NS}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: example/web:1}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: held, namespace: NS}
spec:
  paused: true
  replicas: 1
  selector: {matchLabels: {app: held}}
  template:
    metadata: {labels: {app: held}}
    spec: {containers: [{name: held, image: example/held:1}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, namespace: NS}
data: {a: b}
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: web, namespace: NS}
spec:
  interval: 10m
  chart: {spec: {chart: web, sourceRef: {kind: HelmRepository, name: charts}}}
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: fresh, namespace: NS}
spec:
  interval: 10m
  chart: {spec: {chart: web, sourceRef: {kind: HelmRepository, name: charts}}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: config, namespace: NS}
spec:
  interval: 10m
  path: ./config
  prune: true
  sourceRef: {kind: GitRepository, name: repo}
`, "NS", ns)
	objs, err := object.Decode([]byte(docs), "tree_test")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range objs {
		if err := w.c.Create(ctx, d.Object); err != nil {
			t.Fatal(err)
		}
	}
	inv := func(ids ...string) *kustomizev1.ResourceInventory {
		out := &kustomizev1.ResourceInventory{}
		for _, id := range ids {
			out.Entries = append(out.Entries, kustomizev1.ResourceRef{ID: id, Version: "v1"})
		}
		return out
	}
	hr := &helmv2.HelmRelease{}
	if err := w.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, hr); err != nil {
		t.Fatal(err)
	}
	hr.Status.Inventory = inv(ns+"_web_apps_Deployment", ns+"_web-config__ConfigMap")
	if err := w.c.Status().Update(ctx, hr); err != nil {
		t.Fatal(err)
	}
	ks := &kustomizev1.Kustomization{}
	if err := w.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "config"}, ks); err != nil {
		t.Fatal(err)
	}
	ks.Status.Inventory = inv(ns+"_held_apps_Deployment", ns+"_web-config__ConfigMap")
	if err := w.c.Status().Update(ctx, ks); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web", "fresh"} {
		w.waitIndexed(t, units.Ref{Kind: "HelmRelease", Namespace: ns, Name: name})
	}
	w.waitIndexed(t, units.Ref{Kind: "Kustomization", Namespace: ns, Name: "config"})
	boss := w.login(t, "boss")
	detail := func(kind, name string) server.Detail {
		t.Helper()
		code, body := boss.do("GET", "/api/v1/units/"+kind+"/"+ns+"/"+name, nil)
		if code != http.StatusOK {
			t.Fatalf("%s %s: %d %s", kind, name, code, body)
		}
		var d server.Detail
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatal(err)
		}
		return d
	}

	// The fake node runs both Pods: the Deployment, its ReplicaSet and
	// the Pods become Healthy.
	var d server.Detail
	healthy := func(n *server.Node) bool { return n != nil && n.Health == "Healthy" }
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 90*time.Second, true, func(context.Context) (bool, error) {
		d = detail("HelmRelease", "web")
		if len(d.Tree) != 2 || len(d.Tree[0].Children) != 1 {
			return false, nil
		}
		rs := d.Tree[0].Children[0]
		return healthy(d.Tree[0]) && healthy(rs) && len(rs.Children) == 2 && healthy(rs.Children[0]) && healthy(rs.Children[1]), nil
	})
	if err != nil {
		out, _ := json.MarshalIndent(d.Tree, "", " ")
		t.Fatalf("the HelmRelease's tree never showed a healthy Deployment → ReplicaSet → 2 Pods:\n%s", out)
	}
	dep, cm := d.Tree[0], d.Tree[1]
	if dep.Kind != "Deployment" || dep.Name != "web" || cm.Kind != "ConfigMap" || cm.Health != "" || len(cm.Children) != 0 {
		t.Errorf("tree top %+v, %+v", dep, cm)
	}
	if rs := dep.Children[0]; rs.Kind != "ReplicaSet" || !strings.HasPrefix(rs.Name, "web-") || rs.Children[0].Kind != "Pod" {
		t.Errorf("children %+v", rs)
	}
	if d.TreeNote != "" {
		t.Errorf("tree note %q on a release with an inventory", d.TreeNote)
	}

	// What the workload cache keeps of a real Pod, for the note on memory.
	pods := &unstructured.UnstructuredList{}
	pods.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: "PodList"})
	if err := w.c.List(ctx, pods, client.InNamespace(ns)); err == nil && len(pods.Items) > 0 {
		p := pods.Items[0]
		p.SetManagedFields(nil) // the manager's caches drop them too
		whole, _ := json.Marshal(p.Object)
		out, _ := tree.WorkloadTransform(&p)
		kept, _ := json.Marshal(out.(*unstructured.Unstructured).Object)
		t.Logf("a Pod: %d bytes of JSON, %d kept", len(whole), len(kept))
	}
	if f := detail("HelmRelease", "fresh"); len(f.Tree) != 0 || f.TreeNote != "no release recorded its objects yet" {
		t.Errorf("a release without an inventory: tree %v, note %q", f.Tree, f.TreeNote)
	}
	// Health is the object's own: a paused Deployment is Suspended.
	if k := detail("Kustomization", "config"); len(k.Tree) != 2 || k.Tree[0].Name != "held" || k.Tree[0].Health != "Suspended" || k.Tree[1].Name != "web-config" {
		out, _ := json.MarshalIndent(k.Tree, "", " ")
		t.Errorf("the Kustomization's tree:\n%s", out)
	}
}
