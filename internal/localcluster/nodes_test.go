package localcluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// TestNodesMode runs a cluster with two fake nodes: Deployments become
// Available, Jobs complete, and pod annotations make the fake kubelet
// report the failures health gates must catch.
func TestNodesMode(t *testing.T) {
	c := start(t, 2)
	cs, dyn := clients(t, c)
	ctx := context.Background()

	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 2 {
		t.Fatalf("nodes: got %d (%v), want 2", len(nodes.Items), err)
	}

	t.Run("deployment becomes available", func(t *testing.T) {
		apply(t, dyn, deployments, "default", "deployment.yaml")
		waitFor(t, "deployment web Available with 3 ready replicas", func() (bool, error) {
			d, err := cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return d.Status.ReadyReplicas == 3 && condition(d.Status.Conditions, appsv1.DeploymentAvailable), nil
		})
	})

	t.Run("job completes", func(t *testing.T) {
		job := apply(t, dyn, jobs, "default", "job.yaml")
		waitFor(t, "job "+job.GetName()+" Complete", func() (bool, error) {
			j, err := cs.BatchV1().Jobs("default").Get(ctx, job.GetName(), metav1.GetOptions{})
			return err == nil && jobCondition(j, batchv1.JobComplete), err
		})
	})

	t.Run("job fails", func(t *testing.T) {
		job := apply(t, dyn, jobs, "default", "job-failing.yaml")
		waitFor(t, "job "+job.GetName()+" Failed", func() (bool, error) {
			j, err := cs.BatchV1().Jobs("default").Get(ctx, job.GetName(), metav1.GetOptions{})
			return err == nil && jobCondition(j, batchv1.JobFailed), err
		})
	})

	for _, state := range []string{"CrashLoopBackOff", "ImagePullBackOff"} {
		t.Run(state, func(t *testing.T) {
			name := "sim-" + map[string]string{"CrashLoopBackOff": "crash", "ImagePullBackOff": "pull"}[state]
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"sim.converge.dev/state": state}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example/app:1"}}},
			}
			if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, fmt.Sprintf("pod %s waiting with %s", name, state), func() (bool, error) {
				p, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
				if err != nil || len(p.Status.ContainerStatuses) == 0 {
					return false, err
				}
				w := p.Status.ContainerStatuses[0].State.Waiting
				return w != nil && w.Reason == state && !podReady(p), nil
			})
		})
	}

	t.Run("delayed pod is Pending first", func(t *testing.T) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "slow", Annotations: map[string]string{"sim.converge.dev/delay": "1500ms"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example/app:1"}}},
		}
		created, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "pod slow Ready", func() (bool, error) {
			p, err := cs.CoreV1().Pods("default").Get(ctx, "slow", metav1.GetOptions{})
			return err == nil && podReady(p), err
		})
		ready := readySince(t, cs, "slow")
		if d := ready.Sub(created.CreationTimestamp.Time); d < time.Second {
			t.Errorf("pod slow Ready %s after creation, want at least 1s (delay 1500ms, second-resolution timestamps)", d)
		}
	})
}

func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		ok, err := cond()
		if err != nil {
			last = err
		}
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last error: %v)", what, err, last)
	}
}

func condition(conds []appsv1.DeploymentCondition, typ appsv1.DeploymentConditionType) bool {
	for _, c := range conds {
		if c.Type == typ && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func jobCondition(j *batchv1.Job, typ batchv1.JobConditionType) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == typ && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func readySince(t *testing.T, cs kubernetes.Interface, name string) time.Time {
	t.Helper()
	p, err := cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.LastTransitionTime.Time
		}
	}
	t.Fatalf("pod %s has no Ready condition", name)
	return time.Time{}
}
