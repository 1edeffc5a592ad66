package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/controlplane"
	"converge.dev/converge/internal/dialect/appset"
	"converge.dev/converge/internal/dialect/argocd"
	"converge.dev/converge/internal/localcluster"
)

// startRemote starts another real cluster (API only) and registers it in
// ns under name with labels, as `converge cluster register` would.
func startRemote(t testing.TB, c client.Client, ns, name string, labels map[string]string) client.Client {
	t.Helper()
	remote, err := localcluster.Start(context.Background(), localcluster.Options{Name: name, Dir: t.TempDir(), Build: controlplane.Options{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = remote.Stop(context.Background()) })
	cfg, err := remote.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	sec, err := argocd.ClusterSecret(ns, name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range labels {
		sec.Labels[k] = v
	}
	create(t, c, sec)
	s, _ := Scheme()
	rc, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func appSet(t testing.TB, c client.Client, doc string) *v1alpha1.ApplicationSet {
	t.Helper()
	set := &v1alpha1.ApplicationSet{}
	if err := yaml.UnmarshalStrict([]byte(doc), set); err != nil {
		t.Fatal(err)
	}
	create(t, c, set)
	return set
}

// waitSet waits for the set to satisfy cond, with its owned Applications.
func waitSet(t *testing.T, c client.Client, ns, name, what string, cond func(*v1alpha1.ApplicationSet, []v1alpha1.Application) bool) (*v1alpha1.ApplicationSet, []v1alpha1.Application) {
	t.Helper()
	set := &v1alpha1.ApplicationSet{}
	var apps []v1alpha1.Application
	err := wait.PollUntilContextTimeout(context.Background(), 300*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, set); err != nil {
			return false, nil
		}
		var list v1alpha1.ApplicationList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, nil
		}
		apps = nil
		for _, a := range list.Items {
			if metav1.IsControlledBy(&a, set) && a.DeletionTimestamp == nil {
				apps = append(apps, a)
			}
		}
		return cond(set, apps), nil
	})
	if err != nil {
		out, _ := yaml.Marshal(set.Status)
		t.Fatalf("applicationset %s: waiting for %s: %v (%d apps)\nstatus:\n%s", name, what, err, len(apps), out)
	}
	return set, apps
}

func setCondition(set *v1alpha1.ApplicationSet, typ string) v1alpha1.ApplicationSetCondition {
	for _, c := range set.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return v1alpha1.ApplicationSetCondition{}
}

// TestApplicationSetClusters: Argo CD's documented cluster generator,
// unchanged but for URLs, over three real clusters (this one and two
// registered): the label selector picks the two, each gets its
// Application, and each Application deploys into its own cluster. Then
// Argo CD #18480 replayed: a cluster Secret turns unreadable, the
// generator fails, and nothing is deleted until it reads again.
func TestApplicationSetClusters(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	staging := startRemote(t, c, ns, "staging-"+ns, map[string]string{"env": "staging"})
	prod := startRemote(t, c, ns, "prod-"+ns, map[string]string{"env": "prod"})
	repo.Commit("guestbook", map[string]string{"guestbook/cm.yaml": configMapYAML("guestbook", "hello")})
	repo.Publish()
	target := "guestbook-" + ns
	appSet(t, c, fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: guestbook
  namespace: %s
spec:
  syncPolicy: {preserveResourcesOnDeletion: true}
  generators:
  - clusters:
      selector:
        matchExpressions:
        - {key: env, operator: In, values: [staging, prod]}
  template:
    metadata:
      name: '{{name}}-guestbook'
      labels: {env: '{{metadata.labels.env}}'}
      finalizers: [resources-finalizer.argocd.argoproj.io]
    spec:
      project: "default"
      source:
        repoURL: file://%s
        targetRevision: HEAD
        path: guestbook
      destination:
        server: '{{server}}'
        namespace: %s
      syncPolicy:
        automated: {prune: true}
        syncOptions: [CreateNamespace=true]
`, ns, repo.Bare, target))
	set, apps := waitSet(t, c, ns, "guestbook", "two Applications Synced and Healthy", func(s *v1alpha1.ApplicationSet, apps []v1alpha1.Application) bool {
		ok := len(apps) == 2
		for _, a := range apps {
			ok = ok && a.Status.Sync.Status == "Synced" && a.Status.Health.Status == "Healthy"
		}
		return ok
	})
	for _, a := range apps {
		if !strings.HasSuffix(a.Name, "-"+ns+"-guestbook") || a.Labels["env"] == "" {
			t.Errorf("generated %s labels %v", a.Name, a.Labels)
		}
	}
	for name, rc := range map[string]client.Client{"staging": staging, "prod": prod} {
		if configMapValue(rc, target, "guestbook") != "hello" {
			t.Errorf("cluster %s: the guestbook was not deployed there", name)
		}
	}
	if configMapValue(c, target, "guestbook") != "" {
		t.Error("the selector does not pick this cluster, yet the guestbook is here")
	}
	if c := setCondition(set, "ResourcesUpToDate"); c.Status != "True" || len(set.Status.Resources) != 2 {
		t.Errorf("status: %+v, resources %+v", c, set.Status.Resources)
	}

	// #18480: the cluster list fails (a Secret cannot be read).
	sec := &corev1.Secret{}
	key := types.NamespacedName{Namespace: ns, Name: "cluster-prod-" + ns}
	good := ""
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(ctx, key, sec); err != nil {
			return err
		}
		good = string(sec.Data["config"])
		sec.Data["config"] = []byte(`{"bearerToken": `)
		return c.Update(ctx, sec)
	}); err != nil {
		t.Fatal(err)
	}
	set, _ = waitSet(t, c, ns, "guestbook", "ErrorOccurred", func(s *v1alpha1.ApplicationSet, _ []v1alpha1.Application) bool {
		return setCondition(s, "ErrorOccurred").Status == "True"
	})
	if msg := setCondition(set, "ErrorOccurred").Message; !strings.Contains(msg, "clusters generator: cluster secret "+ns+"/cluster-prod-"+ns) {
		t.Errorf("ErrorOccurred: %s", msg)
	}
	time.Sleep(3 * time.Second)
	_, apps = waitSet(t, c, ns, "guestbook", "both Applications kept", func(_ *v1alpha1.ApplicationSet, apps []v1alpha1.Application) bool { return true })
	if len(apps) != 2 || configMapValue(prod, target, "guestbook") != "hello" {
		t.Fatalf("a failed cluster list deleted Applications: %d left", len(apps))
	}
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(ctx, key, sec); err != nil {
			return err
		}
		sec.Data["config"] = []byte(good)
		return c.Update(ctx, sec)
	}); err != nil {
		t.Fatal(err)
	}
	set, _ = waitSet(t, c, ns, "guestbook", "recovered", func(s *v1alpha1.ApplicationSet, apps []v1alpha1.Application) bool {
		return setCondition(s, "ErrorOccurred").Status == "False" && len(apps) == 2
	})

	// Deleting the set with preserveResourcesOnDeletion: its Applications
	// go, what they deployed stays (their resources finalizer is let go
	// first; without that it would delete the guestbooks).
	if err := c.Delete(ctx, set); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 300*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		var list v1alpha1.ApplicationList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, nil
		}
		return len(list.Items) == 0, nil
	})
	if err != nil {
		t.Fatal("the deleted set's Applications were not deleted")
	}
	for name, rc := range map[string]client.Client{"staging": staging, "prod": prod} {
		if configMapValue(rc, target, "guestbook") != "hello" {
			t.Errorf("cluster %s: preserveResourcesOnDeletion, yet the guestbook was deleted", name)
		}
	}
}

// TestApplicationSetMassDeletion is the seed's Exercise 4: a generator
// change that would drop most of a set's Applications is held with a
// condition naming the generator and the counts; the Applications stay
// until a person approves (after the hold began), then go. A generator
// converge does not run is named, and nothing is created or deleted.
func TestApplicationSetMassDeletion(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	elements := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "      - team: team-%02d\n", i)
		}
		return b.String()
	}
	doc := func(n int) string {
		return fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: teams
  namespace: %s
spec:
  generators:
  - list:
      elements:
%s  template:
    metadata:
      name: '{{team}}'
    spec:
      project: default
      source: {repoURL: 'file://%s', targetRevision: HEAD, path: guestbook}
      destination: {server: 'https://kubernetes.default.svc', namespace: '%s'}
`, ns, elements(n), repo.Bare, ns)
	}
	appSet(t, c, doc(20))
	waitSet(t, c, ns, "teams", "20 Applications", func(_ *v1alpha1.ApplicationSet, apps []v1alpha1.Application) bool { return len(apps) == 20 })

	// The list shrinks to 2: 18 deletions, above the default limit (a
	// quarter of 20).
	update := func(d string) {
		t.Helper()
		want := &v1alpha1.ApplicationSet{}
		if err := yaml.UnmarshalStrict([]byte(d), want); err != nil {
			t.Fatal(err)
		}
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			set := &v1alpha1.ApplicationSet{}
			if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "teams"}, set); err != nil {
				return err
			}
			set.Spec = want.Spec
			return c.Update(ctx, set)
		}); err != nil {
			t.Fatal(err)
		}
	}
	update(doc(2))
	set, _ := waitSet(t, c, ns, "teams", "DeletionHeld", func(s *v1alpha1.ApplicationSet, _ []v1alpha1.Application) bool {
		return setCondition(s, "DeletionHeld").Status == "True"
	})
	if msg := setCondition(set, "DeletionHeld").Message; !strings.Contains(msg, "spec.generators[0].list would delete 18 of the 20 Applications") ||
		!strings.Contains(msg, "more than the limit of 5 in one round") {
		t.Errorf("DeletionHeld: %s", msg)
	}
	time.Sleep(3 * time.Second)
	_, apps := waitSet(t, c, ns, "teams", "still 20", func(_ *v1alpha1.ApplicationSet, apps []v1alpha1.Application) bool { return true })
	if len(apps) != 20 {
		t.Fatalf("held deletions went ahead: %d Applications left", len(apps))
	}
	// An approval older than the hold approves nothing; a newer one does.
	approve := func(at time.Time) {
		t.Helper()
		set := &v1alpha1.ApplicationSet{}
		set.Namespace, set.Name = ns, "teams"
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, appset.DeletionApprovedAnnotation, at.UTC().Format(time.RFC3339))
		if err := c.Patch(ctx, set, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
			t.Fatal(err)
		}
	}
	approve(time.Now().Add(-time.Hour))
	time.Sleep(3 * time.Second)
	if _, apps = waitSet(t, c, ns, "teams", "still 20", func(_ *v1alpha1.ApplicationSet, apps []v1alpha1.Application) bool { return true }); len(apps) != 20 {
		t.Fatalf("an approval from before the hold approved it: %d left", len(apps))
	}
	approve(time.Now().Add(2 * time.Second))
	waitSet(t, c, ns, "teams", "2 Applications, no hold", func(s *v1alpha1.ApplicationSet, apps []v1alpha1.Application) bool {
		return len(apps) == 2 && setCondition(s, "DeletionHeld").Status == "False"
	})

	// A generator whose forge cannot be reached, then one converge does
	// not run: each named, nothing deleted.
	for _, tc := range []struct{ gen, want string }{
		{"  - scmProvider:\n      gitea: {owner: myorg, api: 'http://127.0.0.1:1/'}\n",
			"spec.generators[0].scmProvider: gitea owner myorg: gitea GET /orgs/myorg/repos"},
		{"  - plugin:\n      configMapRef: {name: my-plugin}\n",
			"spec.generators[0].plugin: the plugin generator is not supported by converge yet"},
	} {
		update(strings.Replace(doc(2), "  - list:", tc.gen+"  - list:", 1))
		set, apps = waitSet(t, c, ns, "teams", "ErrorOccurred", func(s *v1alpha1.ApplicationSet, _ []v1alpha1.Application) bool {
			return setCondition(s, "ErrorOccurred").Status == "True" && strings.Contains(setCondition(s, "ErrorOccurred").Message, tc.want)
		})
		if len(apps) != 2 {
			t.Errorf("%s: %d apps left, want 2", tc.want, len(apps))
		}
	}
}

// TestApplicationSetGitDirectories: Argo CD's git directory generator
// over a real repository: one Application per folder, excluded ones
// left out; a folder pushed later is generated when the set is
// refreshed (Argo CD's application-set-refresh annotation).
func TestApplicationSetGitDirectories(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	repo.Commit("addons", map[string]string{
		"addons/metrics/cm.yaml":  configMapYAML("metrics", "on"),
		"addons/logging/cm.yaml":  configMapYAML("logging", "on"),
		"addons/disabled/cm.yaml": configMapYAML("disabled", "on"),
	})
	repo.Publish()
	appSet(t, c, fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: addons
  namespace: %[1]s
spec:
  generators:
  - git:
      repoURL: file://%[2]s
      revision: HEAD
      directories:
      - path: addons/*
      - path: addons/disabled
        exclude: true
  template:
    metadata:
      name: 'addon-{{path.basename}}'
    spec:
      project: default
      source: {repoURL: 'file://%[2]s', targetRevision: HEAD, path: '{{path}}'}
      destination: {server: https://kubernetes.default.svc, namespace: %[1]s}
      syncPolicy: {automated: {prune: true}}
`, ns, repo.Bare))
	waitSet(t, c, ns, "addons", "two addons synced", func(_ *v1alpha1.ApplicationSet, apps []v1alpha1.Application) bool {
		ok := len(apps) == 2
		for _, a := range apps {
			ok = ok && a.Status.Sync.Status == "Synced"
		}
		return ok
	})
	if configMapValue(c, ns, "metrics") != "on" || configMapValue(c, ns, "logging") != "on" || configMapValue(c, ns, "disabled") != "" {
		t.Error("the addons deployed are not the folders generated")
	}
	repo.Commit("tracing", map[string]string{"addons/tracing/cm.yaml": configMapYAML("tracing", "on")})
	repo.Publish()
	set := &v1alpha1.ApplicationSet{}
	set.Namespace, set.Name = ns, "addons"
	if err := c.Patch(ctx, set, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+AppSetRefreshAnnotation+`":"true"}}}`))); err != nil {
		t.Fatal(err)
	}
	waitSet(t, c, ns, "addons", "three addons", func(s *v1alpha1.ApplicationSet, apps []v1alpha1.Application) bool {
		return len(apps) == 3 && s.Annotations[AppSetRefreshAnnotation] == ""
	})
}
