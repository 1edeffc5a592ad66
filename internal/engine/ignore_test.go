package engine

import (
	"context"
	"strings"
	"testing"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"converge.dev/converge/internal/diff"
)

// TestHPAOwnsReplicas is the seed's §8.2 case: Git says replicas 1, an
// autoscaler sets 5 through the scale subresource. Without rules converge
// fights it back to 1; with ignoreDifferences on /spec/replicas and
// RespectIgnoreDifferences it leaves 5 alone, reports Synced, and still
// rolls out other changes.
func TestHPAOwnsReplicas(t *testing.T) {
	e := newEnv(t, "app")
	e.sync(SyncOptions{})
	ctx := context.Background()
	scaleTo := func(n int32) {
		t.Helper()
		s := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: e.ns}, Spec: autoscalingv1.ScaleSpec{Replicas: n}}
		if _, err := e.cs.AppsV1().Deployments(e.ns).UpdateScale(ctx, "web", s, metav1.UpdateOptions{FieldManager: "hpa-controller"}); err != nil {
			t.Fatal(err)
		}
	}
	replicas := func() int32 {
		t.Helper()
		d, err := e.cs.AppsV1().Deployments(e.ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return *d.Spec.Replicas
	}

	scaleTo(5)
	if got := actions(e.sync(SyncOptions{})); got != "update Deployment/web" || replicas() != 1 {
		t.Fatalf("without rules: %s, replicas %d; want the fight back to 1", got, replicas())
	}

	e.unit.Ignore = []diff.Ignore{{Group: "apps", Kind: "Deployment", JSONPointers: []string{"/spec/replicas"}}}
	e.unit.RespectIgnoreDifferences = true
	scaleTo(5)
	st, err := e.eng.Status(ctx, e.unit)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Synced {
		t.Errorf("status with the replica difference ignored: not Synced: %+v", st.Objects)
	}
	if got := actions(e.sync(SyncOptions{})); got != "" || replicas() != 5 {
		t.Errorf("with rules: %s, replicas %d; want nothing done and 5 kept", got, replicas())
	}
	e.repo.Commit("new image", map[string]string{"app/web.yaml": strings.Replace(readFile(t, "testdata/app/web.yaml"), "example/web:1.0", "example/web:1.1", 1)})
	e.repo.Publish()
	if got := actions(e.sync(SyncOptions{})); got != "update Deployment/web" || replicas() != 5 {
		t.Errorf("image change with rules: %s, replicas %d; want the update and 5 kept", got, replicas())
	}
}
