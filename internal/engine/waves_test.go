package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"converge.dev/converge/internal/apply"
)

// TestWaveOrderObservedOnServer watches the namespace while a sync with
// Wait runs: ConfigMaps appear in wave order, and wave 2 appears only
// after the wave-1 Deployment (whose pod starts 2s late) is Available.
func TestWaveOrderObservedOnServer(t *testing.T) {
	e := newEnv(t, "waves")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var seen []string
	var deploymentAvailable time.Time
	watchKind := func(w watch.Interface, err error) {
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer w.Stop()
			for ev := range w.ResultChan() {
				mu.Lock()
				switch o := ev.Object.(type) {
				case *corev1.ConfigMap:
					if ev.Type == watch.Added && o.Name != "kube-root-ca.crt" {
						seen = append(seen, o.Name)
					}
				case *appsv1.Deployment:
					if deploymentAvailable.IsZero() && o.Status.AvailableReplicas == 1 {
						deploymentAvailable = time.Now()
						seen = append(seen, "deployment available")
					}
				}
				mu.Unlock()
			}
		}()
	}
	watchKind(e.cs.CoreV1().ConfigMaps(e.ns).Watch(ctx, metav1.ListOptions{}))
	watchKind(e.cs.AppsV1().Deployments(e.ns).Watch(ctx, metav1.ListOptions{}))

	wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	if _, err := e.eng.Sync(wctx, e.unit, SyncOptions{Wait: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the last watch events arrive
	mu.Lock()
	defer mu.Unlock()
	want := []string{"wave-minus-1", "wave-0", "deployment available", "wave-2"}
	if len(seen) != len(want) {
		t.Fatalf("observed %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("observed %v, want %v", seen, want)
		}
	}
}

// TestDegradedWaveStopsSync: a wave that fails its health gate stops the
// sync; later waves are never applied.
func TestDegradedWaveStopsSync(t *testing.T) {
	e := newEnv(t, "failing")
	e.repo.Commit("failing job", map[string]string{"failing/all.yaml": `apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  backoffLimit: 0
  template:
    metadata: {annotations: {sim.converge.dev/state: Failed}}
    spec:
      restartPolicy: Never
      containers: [{name: m, image: example/migrate:1}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: after-migrate
  annotations: {argocd.argoproj.io/sync-wave: "1"}
`})
	e.repo.Publish()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := e.eng.Sync(ctx, e.unit, SyncOptions{Wait: true})
	if err == nil || !strings.Contains(err.Error(), "Job.batch/"+e.ns+"/migrate is Degraded") {
		t.Fatalf("got %v, want the Job named as Degraded", err)
	}
	if _, err := e.cs.CoreV1().ConfigMaps(e.ns).Get(context.Background(), "after-migrate", metav1.GetOptions{}); err == nil {
		t.Error("wave 1 was applied after wave 0 failed")
	}
}

// TestSyncInSteps: with Step, a sync returns as soon as a wave is not
// healthy yet, naming what it waits for, without applying later waves;
// run again, it goes on from there and ends once all is healthy.
func TestSyncInSteps(t *testing.T) {
	e := newEnv(t, "waves")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := e.eng.Sync(ctx, e.unit, SyncOptions{Wait: true, Step: true})
	if !errors.Is(err, apply.ErrInProgress) || !strings.Contains(err.Error(), "Deployment.apps/"+e.ns+"/") {
		t.Fatalf("first step: got %v, want in progress, waiting for the Deployment", err)
	}
	if _, err := e.cs.CoreV1().ConfigMaps(e.ns).Get(ctx, "wave-2", metav1.GetOptions{}); err == nil {
		t.Fatal("wave 2 was applied while wave 1 was not healthy")
	}
	steps := 1
	for {
		_, err := e.eng.Sync(ctx, e.unit, SyncOptions{Wait: true, Step: true})
		steps++
		if err == nil {
			break
		}
		if !errors.Is(err, apply.ErrInProgress) {
			t.Fatalf("step %d: %v", steps, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	d, err := e.cs.AppsV1().Deployments(e.ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(d.Items) != 1 || d.Items[0].Status.AvailableReplicas != 1 {
		t.Fatalf("the sync ended before the Deployment was available: %v %v", d, err)
	}
	if _, err := e.cs.CoreV1().ConfigMaps(e.ns).Get(ctx, "wave-2", metav1.GetOptions{}); err != nil {
		t.Fatalf("wave 2 after the last step: %v", err)
	}
}
