package plan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/object"
)

func decodeFile(t *testing.T, name string) []object.Decoded {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := object.Decode(data, name)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func summary(p Plan) string {
	var s []string
	for _, st := range p.Steps {
		s = append(s, string(st.Action)+" "+st.Ref.String())
	}
	return strings.Join(s, "\n")
}

func TestOrder(t *testing.T) {
	p, err := Make(Input{Unit: "u", Desired: decodeFile(t, "desired.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"create Namespace/shop",
		"create CustomResourceDefinition.apiextensions.k8s.io/widgets.example.com",
		"create ConfigMap/shop/early",
		"create Service/shop/api",
		"create Deployment.apps/shop/api",
		"create Widget.example.com/shop/w",
		"create Job.batch/shop/smoke",
	}, "\n")
	if got := summary(p); got != want {
		t.Errorf("order:\n got:\n%s\nwant:\n%s", got, want)
	}
}

func owned(obj *unstructured.Unstructured, unit string) *unstructured.Unstructured {
	o := obj.DeepCopy()
	ann := o.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[OwnerAnnotation] = unit
	o.SetAnnotations(ann)
	o.SetResourceVersion("7") // server-set: must not count as a change
	return o
}

func cm(name, value string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": "shop"},
		"data":     map[string]any{"k": value},
	}}
}

func TestActions(t *testing.T) {
	desired := []object.Decoded{}
	for _, c := range []*unstructured.Unstructured{cm("new", "1"), cm("same", "1"), cm("changed", "2"), cm("theirs", "1")} {
		desired = append(desired, object.Decoded{Object: owned(c, "u"), Source: object.Source{File: "cms.yaml", Document: 1}})
	}
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "old-ns"}}}
	live := map[object.Key]*unstructured.Unstructured{}
	for _, o := range []*unstructured.Unstructured{owned(cm("same", "1"), "u"), owned(cm("changed", "1"), "u"),
		owned(cm("theirs", "1"), "other"), owned(cm("gone", "1"), "u"), owned(cm("adopted-by-other", "1"), "other"),
		owned(ns, "u")} {
		live[object.RefOf(o).Key()] = o
	}
	inventory := []object.Ref{
		object.RefOf(cm("same", "")), object.RefOf(cm("gone", "")),
		object.RefOf(cm("adopted-by-other", "")), object.RefOf(cm("deleted-by-hand", "")), object.RefOf(ns),
	}
	tests := []struct {
		prune bool
		want  string
	}{
		{true, `create ConfigMap/shop/new
update ConfigMap/shop/changed
unchanged ConfigMap/shop/same
conflict ConfigMap/shop/theirs
prune ConfigMap/shop/gone
orphan Namespace/old-ns`},
		{false, `create ConfigMap/shop/new
update ConfigMap/shop/changed
unchanged ConfigMap/shop/same
conflict ConfigMap/shop/theirs
orphan ConfigMap/shop/gone
orphan Namespace/old-ns`},
	}
	for _, tt := range tests {
		p, err := Make(Input{Unit: "u", Desired: desired, Live: live, Inventory: inventory, Prune: tt.prune})
		if err != nil {
			t.Fatal(err)
		}
		// Sort-independent view: the apply order of same-kind objects is by name.
		got := summary(p)
		for _, line := range strings.Split(tt.want, "\n") {
			if !strings.Contains(got, line) {
				t.Errorf("prune=%t: missing %q in\n%s", tt.prune, line, got)
			}
		}
		if n := strings.Count(got, "\n") + 1; n != 6 {
			t.Errorf("prune=%t: %d steps, want 6 (an object owned by another unit or already gone is never a step):\n%s", tt.prune, n, got)
		}
		for _, s := range p.Steps {
			if s.Ref.Name == "changed" && !strings.Contains(s.Diff, "-  k: \"1\"") {
				t.Errorf("update diff:\n%s", s.Diff)
			}
		}
	}
	withNS, _ := Make(Input{Unit: "u", Live: live, Inventory: inventory, Prune: true, PruneNamespaces: true, Budget: Budget{Off: true}})
	if !strings.Contains(summary(withNS), "prune Namespace/old-ns") {
		t.Errorf("PruneNamespaces: got\n%s", summary(withNS))
	}
	if p := summary(withNS); strings.Index(p, "prune ConfigMap/shop/gone") > strings.Index(p, "prune Namespace/old-ns") {
		t.Errorf("namespaces must be pruned after what they contain:\n%s", p)
	}
}

func TestBadWave(t *testing.T) {
	c := cm("x", "1")
	c.SetAnnotations(map[string]string{WaveAnnotation: "soon"})
	_, err := Make(Input{Unit: "u", Desired: []object.Decoded{{Object: c, Source: object.Source{File: "apps/x.yaml", Document: 3}}}})
	if err == nil || !strings.Contains(err.Error(), "apps/x.yaml: document 3: ConfigMap/shop/x: annotation argocd.argoproj.io/sync-wave") {
		t.Errorf("got %v, want an error naming file, document, object and annotation", err)
	}
}

func TestPruneSyncOptions(t *testing.T) {
	live := map[object.Key]*unstructured.Unstructured{}
	var inv []object.Ref
	for name, opts := range map[string]string{"keep": "Prune=false", "ask": "ServerSideApply=true, Prune=confirm", "drop": "ServerSideApply=true"} {
		o := owned(cm(name, "1"), "u")
		ann := o.GetAnnotations()
		ann[SyncOptionsAnnotation] = opts
		o.SetAnnotations(ann)
		live[object.RefOf(o).Key()] = o
		inv = append(inv, object.RefOf(o))
	}
	p, err := Make(Input{Unit: "u", Live: live, Inventory: inv, Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range p.Steps {
		got[s.Ref.Name] = string(s.Action) + ": " + s.Reason
	}
	if !strings.HasPrefix(got["keep"], "orphan") || !strings.Contains(got["keep"], "Prune=false") ||
		!strings.HasPrefix(got["ask"], "orphan") || !strings.Contains(got["ask"], "Prune=confirm") ||
		!strings.HasPrefix(got["drop"], "prune") {
		t.Errorf("got %v", got)
	}
	// Approval after the object's creation lets Prune=confirm go; an
	// approval older than the object does not.
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, o := range live {
		o.SetCreationTimestamp(metav1.NewTime(created))
	}
	for approved, want := range map[time.Time]string{created.Add(-time.Hour): "orphan", created.Add(time.Hour): "prune"} {
		p, _ := Make(Input{Unit: "u", Live: live, Inventory: inv, Prune: true, PruneApproved: approved})
		for _, s := range p.Steps {
			if s.Ref.Name == "ask" && string(s.Action) != want {
				t.Errorf("approved %s: ask is %s, want %s", approved, s.Action, want)
			}
			if s.Ref.Name == "keep" && s.Action != Orphan {
				t.Errorf("approval pruned a Prune=false object")
			}
		}
	}
}

// TestFluxObjectAnnotations: reconcile: disabled and ssa: IfNotPresent
// leave an existing object alone (and create a missing one), ssa: Ignore
// never touches it, and prune: disabled or reconcile: disabled keep an
// object Git no longer has.
func TestFluxObjectAnnotations(t *testing.T) {
	withAnn := func(o *unstructured.Unstructured, k, v string) *unstructured.Unstructured {
		o = o.DeepCopy()
		ann := o.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[k] = v
		o.SetAnnotations(ann)
		return o
	}
	live := map[object.Key]*unstructured.Unstructured{}
	var desired []object.Decoded
	add := func(name string, d, l *unstructured.Unstructured) {
		if d != nil {
			desired = append(desired, object.Decoded{Object: d})
		}
		if l != nil {
			live[object.RefOf(l).Key()] = l
		}
	}
	changed := func(name string) *unstructured.Unstructured { return cm(name, "2") }
	add("disabled-in-git", withAnn(changed("disabled-in-git"), FluxReconcileAnnotation, "disabled"), owned(cm("disabled-in-git", "1"), "u"))
	add("disabled-live", changed("disabled-live"), withAnn(owned(cm("disabled-live", "1"), "u"), FluxReconcileAnnotation, "disabled"))
	add("disabled-new", withAnn(changed("disabled-new"), FluxReconcileAnnotation, "disabled"), nil)
	add("if-not-present", withAnn(changed("if-not-present"), FluxSSAAnnotation, "IfNotPresent"), owned(cm("if-not-present", "1"), "u"))
	add("if-not-present-new", withAnn(changed("if-not-present-new"), FluxSSAAnnotation, "IfNotPresent"), nil)
	add("ignore", withAnn(changed("ignore"), FluxSSAAnnotation, "Ignore"), nil)
	add("plain", changed("plain"), owned(cm("plain", "1"), "u"))
	add("", nil, withAnn(owned(cm("keep-prune-disabled", "1"), "u"), FluxPruneAnnotation, "disabled"))
	add("", nil, withAnn(owned(cm("keep-reconcile-disabled", "1"), "u"), FluxReconcileAnnotation, "disabled"))
	inv := []object.Ref{object.RefOf(cm("keep-prune-disabled", "1")), object.RefOf(cm("keep-reconcile-disabled", "1"))}
	p, err := Make(Input{Unit: "u", Desired: desired, Live: live, Inventory: inv, Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Action{}
	for _, s := range p.Steps {
		got[s.Ref.Name] = s.Action
	}
	want := map[string]Action{"disabled-in-git": Untouched, "disabled-live": Untouched, "disabled-new": Create,
		"if-not-present": Untouched, "if-not-present-new": Create, "ignore": Untouched, "plain": Update,
		"keep-prune-disabled": Orphan, "keep-reconcile-disabled": Orphan}
	for name, a := range want {
		if got[name] != a {
			t.Errorf("%s: %s, want %s", name, got[name], a)
		}
	}
}
