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
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/dialect/appset"
	"converge.dev/converge/internal/dialect/argocd"
)

// TestApplicationSetRollingSync: RollingSync over three cluster waves
// (dev here, staging and prod registered), as Argo CD documents it: the
// set syncs each wave only once the one before is Synced and Healthy, so
// the waves land in order. Then a change that leaves dev Degraded halts
// the rollout within its error budget (none): the condition names the
// step and the Application, and staging and prod are not touched.
func TestApplicationSetRollingSync(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	target := "wave-" + ns
	clusters := map[string]client.Client{"dev": c,
		"staging": startRemote(t, c, ns, "staging-"+ns, map[string]string{"env": "staging"}),
		"prod":    startRemote(t, c, ns, "prod-"+ns, map[string]string{"env": "prod"})}
	// This cluster, registered under a name and a label.
	create(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cluster-dev", Namespace: ns, Labels: map[string]string{argocd.SecretTypeLabel: "cluster", "env": "dev"}},
		StringData: map[string]string{"name": "dev-" + ns, "server": argocd.InClusterServer}})
	files := func(v string, crash bool) map[string]string {
		out := map[string]string{}
		for _, env := range []string{"dev", "staging", "prod"} {
			out["waves/"+env+"/cm.yaml"] = configMapYAML("wave", v)
		}
		if crash {
			out["waves/dev/pod.yaml"] = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: crash\n  annotations: {sim.converge.dev/state: CrashLoopBackOff}\n" +
				"spec:\n  containers: [{name: app, image: example/app:2}]\n"
		}
		return out
	}
	v1 := repo.Commit("waves v1", files("v1", false))
	repo.Publish()
	appSet(t, c, fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: waves
  namespace: %[1]s
spec:
  generators:
  - clusters:
      selector:
        matchExpressions:
        - {key: env, operator: In, values: [dev, staging, prod]}
  strategy:
    type: RollingSync
    rollingSync:
      steps:
      - matchExpressions: [{key: env, operator: In, values: [dev]}]
      - matchExpressions: [{key: env, operator: In, values: [staging]}]
      - matchExpressions: [{key: env, operator: In, values: [prod]}]
  template:
    metadata:
      name: '{{metadata.labels.env}}-wave'
      labels: {env: '{{metadata.labels.env}}'}
    spec:
      project: default
      source: {repoURL: 'file://%[2]s', targetRevision: HEAD, path: 'waves/{{metadata.labels.env}}'}
      destination: {server: '{{server}}', namespace: %[3]s}
      syncPolicy:
        automated: {prune: true}
        syncOptions: [CreateNamespace=true]
`, ns, repo.Bare, target))

	// Watch the waves land: record the order each cluster first shows v1.
	var order []string
	seen := map[string]bool{}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, env := range []string{"dev", "staging", "prod"} {
			if !seen[env] && configMapValue(clusters[env], target, "wave") == "v1" {
				seen[env] = true
				order = append(order, env)
			}
		}
		return len(order) == 3, nil
	})
	if err != nil || strings.Join(order, ",") != "dev,staging,prod" {
		t.Fatalf("the waves landed in the order %v (%v), want dev, staging, prod", order, err)
	}
	set, apps := waitSet(t, c, ns, "waves", "rollout complete", func(s *v1alpha1.ApplicationSet, apps []v1alpha1.Application) bool {
		return setCondition(s, "RolloutProgressing").Status == "False" && len(apps) == 3
	})
	for _, a := range apps {
		if a.Spec.SyncPolicy != nil && a.Spec.SyncPolicy.Automated != nil {
			t.Errorf("%s keeps its automated sync under RollingSync", a.Name)
		}
	}
	for _, st := range set.Status.ApplicationStatus {
		if st.Status != "Healthy" || len(st.TargetRevisions) != 1 || st.TargetRevisions[0] != v1.String() {
			t.Errorf("applicationStatus %+v, want Healthy at %s", st, v1)
		}
	}

	// v2 leaves dev Degraded (a crash-looping pod).
	repo.Commit("waves v2", files("v2", true))
	repo.Publish()
	for _, env := range []string{"dev", "staging", "prod"} {
		a := &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: env + "-wave"}}
		if err := c.Patch(ctx, a, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+RefreshAnnotation+`":"hard"}}}`))); err != nil {
			t.Fatal(err)
		}
	}
	set, _ = waitSet(t, c, ns, "waves", "RolloutHalted", func(s *v1alpha1.ApplicationSet, _ []v1alpha1.Application) bool {
		return setCondition(s, "RolloutHalted").Status == "True"
	})
	if msg := setCondition(set, "RolloutHalted").Message; !strings.Contains(msg, "step 1: 1 of its 1 Applications failed (dev-wave (Degraded))") {
		t.Errorf("RolloutHalted: %s", msg)
	}
	time.Sleep(4 * time.Second)
	for _, env := range []string{"staging", "prod"} {
		if v := configMapValue(clusters[env], target, "wave"); v != "v1" {
			t.Errorf("%s was touched past a halted wave: wave=%s", env, v)
		}
	}
	set, _ = waitSet(t, c, ns, "waves", "status", func(*v1alpha1.ApplicationSet, []v1alpha1.Application) bool { return true })
	for _, st := range set.Status.ApplicationStatus {
		want := "Waiting"
		if st.Application == "dev-wave" {
			want = "Degraded"
		}
		if st.Status != want {
			t.Errorf("applicationStatus %s: %s (%s), want %s", st.Application, st.Status, st.Message, want)
		}
	}

	// Asked to revert on halt, the set syncs dev back to v1, the last
	// commit it was Healthy at; the rollout stays halted on v2, and the
	// later waves stay untouched.
	annotate := func(key, value string) {
		t.Helper()
		s := &v1alpha1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "waves"}}
		if err := c.Patch(ctx, s, client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, key, value)))); err != nil {
			t.Fatal(err)
		}
	}
	annotate(appset.OnHaltAnnotation, "revert")
	set, _ = waitSet(t, c, ns, "waves", "dev reverted to v1", func(s *v1alpha1.ApplicationSet, _ []v1alpha1.Application) bool {
		return configMapValue(c, target, "wave") == "v1" && strings.Contains(setCondition(s, "RolloutHalted").Message, "(dev-wave (reverted to ")
	})
	crash := &corev1.Pod{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: target, Name: "crash"}, crash); err == nil && crash.DeletionTimestamp == nil {
		t.Errorf("the revert left v2's crashing pod in place")
	}
	for _, env := range []string{"staging", "prod"} {
		if v := configMapValue(clusters[env], target, "wave"); v != "v1" {
			t.Errorf("%s was touched past a reverted wave: wave=%s", env, v)
		}
	}

	// A fixed commit lifts the revert: the waves go on to v3.
	fixed := files("v3", false)
	fixed["waves/dev/pod.yaml"] = "" // deleted
	repo.Commit("waves v3", fixed)
	repo.Publish()
	for _, env := range []string{"dev", "staging", "prod"} {
		a := &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: env + "-wave"}}
		if err := c.Patch(ctx, a, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+RefreshAnnotation+`":"hard"}}}`))); err != nil {
			t.Fatal(err)
		}
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, env := range []string{"dev", "staging", "prod"} {
			if configMapValue(clusters[env], target, "wave") != "v3" {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		set, apps := waitSet(t, c, ns, "waves", "status", func(*v1alpha1.ApplicationSet, []v1alpha1.Application) bool { return true })
		for _, a := range apps {
			t.Logf("%s: %s %s at %s, op %+v, annotations %v", a.Name, a.Status.Sync.Status, a.Status.Health.Status, a.Status.Sync.Revision, a.Status.OperationState, a.Annotations)
		}
		t.Fatalf("v3 did not roll out after the revert: %v; status %+v", err, set.Status)
	}
}

// TestApplicationSetProgressDeadline: a step whose Application stays
// Progressing (a pod never Ready) past the set's progress deadline counts
// against the error budget: the rollout halts there, and the next step is
// never synced. Without the deadline it would wait forever, as Argo CD's
// does.
func TestApplicationSetProgressDeadline(t *testing.T) {
	c, repo := setup(t)
	ns := clustertest.Namespace(t)
	repo.Commit("deadline", map[string]string{
		"deadline/dev/pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: slow\n  annotations: {sim.converge.dev/state: NotReady}\n" +
			"spec:\n  containers: [{name: app, image: example/app:1}]\n",
		"deadline/prod/cm.yaml": configMapYAML("prod-config", "v1"),
	})
	repo.Publish()
	appSet(t, c, fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: deadline
  namespace: %[1]s
  annotations:
    converge.dev/rollout-progress-deadline: 5s
spec:
  generators:
  - list:
      elements: [{env: dev}, {env: prod}]
  strategy:
    type: RollingSync
    rollingSync:
      steps:
      - matchExpressions: [{key: env, operator: In, values: [dev]}]
      - matchExpressions: [{key: env, operator: In, values: [prod]}]
  template:
    metadata:
      name: '{{env}}-deadline'
      labels: {env: '{{env}}'}
    spec:
      project: default
      source: {repoURL: 'file://%[2]s', targetRevision: HEAD, path: 'deadline/{{env}}'}
      destination: {server: https://kubernetes.default.svc, namespace: %[1]s}
      syncPolicy: {automated: {}}
`, ns, repo.Bare))
	set, _ := waitSet(t, c, ns, "deadline", "RolloutHalted", func(s *v1alpha1.ApplicationSet, _ []v1alpha1.Application) bool {
		return setCondition(s, "RolloutHalted").Status == "True"
	})
	if msg := setCondition(set, "RolloutHalted").Message; !strings.Contains(msg, "step 1: 1 of its 1 Applications failed (dev-deadline (not Synced and Healthy 5s after its sync started))") {
		t.Errorf("RolloutHalted: %s", msg)
	}
	for _, st := range set.Status.ApplicationStatus {
		if st.Application == "prod-deadline" && st.Status != "Waiting" {
			t.Errorf("prod: %+v, want Waiting", st)
		}
	}
	if got := configMapValue(c, ns, "prod-config"); got != "" {
		t.Errorf("the prod step was synced (%q) after the dev step missed its deadline", got)
	}
}
