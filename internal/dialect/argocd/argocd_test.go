package argocd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/object"
)

func load(t *testing.T, name string) (*v1alpha1.Application, *unstructured.Unstructured) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &u.Object); err != nil {
		t.Fatal(err)
	}
	app := &v1alpha1.Application{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, app); err != nil {
		t.Fatal(err)
	}
	return app, u
}

func TestSeedApplication(t *testing.T) {
	app, raw := load(t, "seed-application.yaml")
	u, o, err := ToUnit(app)
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "argocd.argocd.orders-api-prod" || u.Revision != "main" || u.Path != "apps/orders-api/overlays/prod" || u.DestNamespace != "orders-prod" {
		t.Errorf("unit: %+v", u)
	}
	if !o.Automated || !o.SelfHeal || !o.Sync.Prune || o.CreateNamespace {
		t.Errorf("options: %+v", o)
	}
	if got := Unsupported(raw); len(got) != 0 {
		t.Errorf("the seed's Application uses only supported fields, got %v", got)
	}
}

func TestUnsupportedFieldsAreNamed(t *testing.T) {
	_, raw := load(t, "unsupported-application.yaml")
	want := []string{
		"spec.source.helm.parameters",
		"spec.source.kustomize",
		"spec.syncPolicy.syncOptions[Replace=true]",
	}
	if got := Unsupported(raw); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestProjectRules(t *testing.T) {
	app, _ := load(t, "seed-application.yaml")
	proj := &v1alpha1.AppProject{ObjectMeta: metav1.ObjectMeta{Name: "regulated-platform"}, Spec: v1alpha1.AppProjectSpec{
		SourceRepos:                []string{"https://git.example.com/platform/*"},
		Destinations:               []v1alpha1.ApplicationDestination{{Server: InClusterServer, Namespace: "orders-*"}},
		NamespaceResourceBlacklist: []metav1.GroupKind{{Group: "", Kind: "ResourceQuota"}},
		ClusterResourceWhitelist:   []metav1.GroupKind{{Group: "", Kind: "Namespace"}},
	}}
	if err := Permits(proj, app, inCluster); err != nil {
		t.Errorf("seed app in its project: %v", err)
	}
	other := app.DeepCopy()
	other.Spec.Source.RepoURL = "https://evil.example.com/apps.git"
	if err := Permits(proj, other, inCluster); err == nil || !strings.Contains(err.Error(), "not permitted in project 'regulated-platform'") {
		t.Errorf("foreign repo: %v", err)
	}
	other = app.DeepCopy()
	other.Spec.Destination.Namespace = "kube-system"
	if err := Permits(proj, other, inCluster); err == nil || !strings.Contains(err.Error(), "do not match any of the allowed destinations") {
		t.Errorf("foreign namespace: %v", err)
	}
	ok := []object.Ref{{Kind: "Namespace", Name: "orders-prod"}, {Group: "apps", Kind: "Deployment", Namespace: "orders-prod", Name: "api"}}
	if err := PermitsKinds(proj, ok); err != nil {
		t.Errorf("allowed kinds: %v", err)
	}
	for _, bad := range []object.Ref{
		{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "admin"},
		{Kind: "ResourceQuota", Namespace: "orders-prod", Name: "q"},
	} {
		if err := PermitsKinds(proj, []object.Ref{bad}); err == nil {
			t.Errorf("%s permitted", bad)
		}
	}
}

func TestSetConditionKeepsTimeWhenUnchanged(t *testing.T) {
	app := &v1alpha1.Application{}
	t0, t1 := time.Unix(100, 0), time.Unix(200, 0)
	SetCondition(app, "SyncError", "boom", t0)
	SetCondition(app, "SyncError", "boom", t1)
	if len(app.Status.Conditions) != 1 || !app.Status.Conditions[0].LastTransitionTime.Time.Equal(t0) {
		t.Errorf("conditions: %+v", app.Status.Conditions)
	}
	SetCondition(app, "SyncError", "", t1)
	if len(app.Status.Conditions) != 0 {
		t.Errorf("cleared condition still there: %+v", app.Status.Conditions)
	}
}

// TestRefusedSources: a plugin source is an error naming the field,
// never an empty render reported as synced.
func TestRefusedSources(t *testing.T) {
	_, raw := load(t, "seed-application.yaml")
	if err := Refused(raw); err != nil {
		t.Errorf("seed application: %v", err)
	}
	unstructured.SetNestedField(raw.Object, map[string]any{"name": "cmp-tanka"}, "spec", "source", "plugin")
	if err := Refused(raw); err == nil || !strings.HasPrefix(err.Error(), "spec.source.plugin: config management plugins are not supported") {
		t.Errorf("plugin source: got %v", err)
	}
}

var inCluster = Cluster{Name: InClusterName, Server: InClusterServer}
