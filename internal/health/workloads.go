package health

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// deployment follows `kubectl rollout status`: paused is Suspended, a
// passed progress deadline is Degraded, and a rollout is Progressing until
// every replica is updated and available and no old one is left.
func deployment(obj *unstructured.Unstructured) (Result, error) {
	d, err := typed[appsv1.Deployment](obj)
	if err != nil {
		return Result{}, err
	}
	if d.Spec.Paused {
		return Result{Suspended, "Deployment is paused"}, nil
	}
	if d.Generation > d.Status.ObservedGeneration {
		return Result{Progressing, "Waiting for rollout to finish: observed deployment generation less than desired generation"}, nil
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			return Result{Degraded, fmt.Sprintf("Deployment %q exceeded its progress deadline", d.Name)}, nil
		}
	}
	st := d.Status
	switch {
	case d.Spec.Replicas != nil && st.UpdatedReplicas < *d.Spec.Replicas:
		return Result{Progressing, fmt.Sprintf("Waiting for rollout to finish: %d out of %d new replicas have been updated...", st.UpdatedReplicas, *d.Spec.Replicas)}, nil
	case st.Replicas > st.UpdatedReplicas:
		return Result{Progressing, fmt.Sprintf("Waiting for rollout to finish: %d old replicas are pending termination...", st.Replicas-st.UpdatedReplicas)}, nil
	case st.AvailableReplicas < st.UpdatedReplicas:
		return Result{Progressing, fmt.Sprintf("Waiting for rollout to finish: %d of %d updated replicas are available...", st.AvailableReplicas, st.UpdatedReplicas)}, nil
	}
	return Result{Status: Healthy}, nil
}

func statefulSet(obj *unstructured.Unstructured) (Result, error) {
	s, err := typed[appsv1.StatefulSet](obj)
	if err != nil {
		return Result{}, err
	}
	st := s.Status
	if st.ObservedGeneration == 0 || s.Generation > st.ObservedGeneration {
		return Result{Progressing, "Waiting for statefulset spec update to be observed..."}, nil
	}
	if s.Spec.Replicas != nil && st.ReadyReplicas < *s.Spec.Replicas {
		return Result{Progressing, fmt.Sprintf("Waiting for %d pods to be ready...", *s.Spec.Replicas-st.ReadyReplicas)}, nil
	}
	if s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		// OnDelete never rolls pods by itself; readiness is all there is.
		return Result{Healthy, fmt.Sprintf("statefulset has %d ready pods", st.ReadyReplicas)}, nil
	}
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil && s.Spec.Replicas != nil {
		want := *s.Spec.Replicas - *ru.Partition
		if st.UpdatedReplicas < want {
			return Result{Progressing, fmt.Sprintf("Waiting for partitioned roll out to finish: %d out of %d new pods have been updated...", st.UpdatedReplicas, want)}, nil
		}
		return Result{Healthy, fmt.Sprintf("partitioned roll out complete: %d new pods have been updated...", st.UpdatedReplicas)}, nil
	}
	if st.UpdateRevision != st.CurrentRevision {
		return Result{Progressing, fmt.Sprintf("waiting for statefulset rolling update to complete %d pods at revision %s...", st.UpdatedReplicas, st.UpdateRevision)}, nil
	}
	return Result{Healthy, fmt.Sprintf("statefulset rolling update complete %d pods at revision %s...", st.CurrentReplicas, st.CurrentRevision)}, nil
}

func daemonSet(obj *unstructured.Unstructured) (Result, error) {
	d, err := typed[appsv1.DaemonSet](obj)
	if err != nil {
		return Result{}, err
	}
	st := d.Status
	if d.Generation > st.ObservedGeneration {
		return Result{Progressing, "Waiting for daemon set spec update to be observed..."}, nil
	}
	if d.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType {
		return Result{Healthy, fmt.Sprintf("daemon set %d out of %d new pods have been updated", st.UpdatedNumberScheduled, st.DesiredNumberScheduled)}, nil
	}
	if st.UpdatedNumberScheduled < st.DesiredNumberScheduled {
		return Result{Progressing, fmt.Sprintf("Waiting for daemon set %q rollout to finish: %d out of %d new pods have been updated...", d.Name, st.UpdatedNumberScheduled, st.DesiredNumberScheduled)}, nil
	}
	if st.NumberAvailable < st.DesiredNumberScheduled {
		return Result{Progressing, fmt.Sprintf("Waiting for daemon set %q rollout to finish: %d of %d updated pods are available...", d.Name, st.NumberAvailable, st.DesiredNumberScheduled)}, nil
	}
	return Result{Status: Healthy}, nil
}

func replicaSet(obj *unstructured.Unstructured) (Result, error) {
	r, err := typed[appsv1.ReplicaSet](obj)
	if err != nil {
		return Result{}, err
	}
	if r.Generation > r.Status.ObservedGeneration {
		return Result{Progressing, "Waiting for rollout to finish: observed replica set generation less than desired generation"}, nil
	}
	for _, c := range r.Status.Conditions {
		if c.Type == appsv1.ReplicaSetReplicaFailure && c.Status == corev1.ConditionTrue {
			return Result{Degraded, c.Message}, nil
		}
	}
	if r.Spec.Replicas != nil && r.Status.AvailableReplicas < *r.Spec.Replicas {
		return Result{Progressing, fmt.Sprintf("Waiting for rollout to finish: %d out of %d new replicas are available...", r.Status.AvailableReplicas, *r.Spec.Replicas)}, nil
	}
	return Result{Status: Healthy}, nil
}
