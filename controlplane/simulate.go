package main

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// simulate returns the status a real kubelet would report for pod in the
// state its annotation asks for. Times keep their first value so that a
// repeated sync does not churn the object.
func (k *kubelet) simulate(pod *corev1.Pod) corev1.PodStatus {
	now := metav1.Now()
	st := pod.Status.DeepCopy()
	if st.StartTime == nil {
		st.StartTime = &now
	}
	if st.PodIP == "" {
		n := k.nextIP.Add(1)
		st.PodIP = fmt.Sprintf("10.244.%d.%d", n/250, n%250+1)
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	}
	st.HostIP = "127.0.0.1"
	st.HostIPs = []corev1.HostIP{{IP: "127.0.0.1"}}

	state := pod.Annotations[annotationState]
	finishes := pod.Spec.RestartPolicy == corev1.RestartPolicyNever || pod.Spec.RestartPolicy == corev1.RestartPolicyOnFailure
	phase, ready := corev1.PodRunning, true
	var cs func(c corev1.Container) corev1.ContainerStatus
	switch state {
	case "CrashLoopBackOff":
		phase, ready = corev1.PodRunning, false
		cs = func(c corev1.Container) corev1.ContainerStatus {
			s := containerStatus(c, false)
			s.RestartCount = 5
			s.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
				Message: fmt.Sprintf("back-off 5m0s restarting failed container=%s pod=%s_%s(%s)", c.Name, pod.Name, pod.Namespace, pod.UID)}}
			s.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", StartedAt: now, FinishedAt: now}}
			return s
		}
	case "ImagePullBackOff", "ErrImagePull":
		phase, ready = corev1.PodPending, false
		cs = func(c corev1.Container) corev1.ContainerStatus {
			s := containerStatus(c, false)
			s.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: state,
				Message: fmt.Sprintf("Back-off pulling image %q", c.Image)}}
			return s
		}
	case "NotReady":
		ready = false
		cs = func(c corev1.Container) corev1.ContainerStatus { return containerStatus(c, false) }
	case "Failed":
		phase, ready = corev1.PodFailed, false
		cs = func(c corev1.Container) corev1.ContainerStatus { return terminated(c, now, 1, "Error") }
	case "Running":
		cs = func(c corev1.Container) corev1.ContainerStatus { return containerStatus(c, true) }
	default:
		if finishes {
			phase, ready = corev1.PodSucceeded, false
			cs = func(c corev1.Container) corev1.ContainerStatus { return terminated(c, now, 0, "Completed") }
		} else {
			cs = func(c corev1.Container) corev1.ContainerStatus { return containerStatus(c, true) }
		}
	}

	st.Phase = phase
	st.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, cs(c))
	}
	st.InitContainerStatuses = nil
	for _, c := range pod.Spec.InitContainers {
		st.InitContainerStatuses = append(st.InitContainerStatuses, terminated(c, now, 0, "Completed"))
	}
	initialized := phase != corev1.PodPending || state == "ImagePullBackOff" || state == "ErrImagePull"
	st.Conditions = setConditions(st.Conditions, now, map[corev1.PodConditionType]bool{
		corev1.PodScheduled:    true,
		corev1.PodInitialized:  initialized,
		corev1.ContainersReady: ready,
		corev1.PodReady:        ready,
	})
	return *st
}

func containerStatus(c corev1.Container, ready bool) corev1.ContainerStatus {
	started := true
	return corev1.ContainerStatus{
		Name: c.Name, Image: c.Image, ImageID: "fake://" + c.Image,
		ContainerID: "fake://" + c.Name, Ready: ready, Started: &started,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
	}
}

func terminated(c corev1.Container, at metav1.Time, code int32, reason string) corev1.ContainerStatus {
	s := containerStatus(c, false)
	started := false
	s.Started = &started
	s.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, StartedAt: at, FinishedAt: at}}
	return s
}

// setConditions keeps LastTransitionTime unless the status flips.
func setConditions(old []corev1.PodCondition, now metav1.Time, want map[corev1.PodConditionType]bool) []corev1.PodCondition {
	var out []corev1.PodCondition
	for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		status := corev1.ConditionFalse
		if want[t] {
			status = corev1.ConditionTrue
		}
		c := corev1.PodCondition{Type: t, Status: status, LastTransitionTime: now}
		for _, o := range old {
			if o.Type == t && o.Status == status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		out = append(out, c)
	}
	return out
}
