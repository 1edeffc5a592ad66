package health

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ignoreRestartPolicy makes a finite pod (restartPolicy Never or
// OnFailure) be judged like a long-running one, as Argo CD's annotation
// of the same name does. Hooks never get this treatment: a hook pod that
// is Running has not finished its job.
const ignoreRestartPolicy = "argocd.argoproj.io/ignore-restart-policy"

func pod(obj *unstructured.Unstructured) (Result, error) {
	p, err := typed[corev1.Pod](obj)
	if err != nil {
		return Result{}, err
	}
	longRunning := p.Spec.RestartPolicy == corev1.RestartPolicyAlways || p.Spec.RestartPolicy == "" ||
		(p.Annotations[ignoreRestartPolicy] == "true" && !isHook(p.Annotations))

	// A container stuck waiting on an error is Degraded, but only for pods
	// that run forever: a hook pod that cannot pull yet may still run, and
	// failing it early would end the sync before it could.
	if longRunning {
		var msgs []string
		for _, c := range p.Status.ContainerStatuses {
			if w := c.State.Waiting; w != nil && failingWait(w.Reason) {
				msgs = append(msgs, w.Message)
			}
		}
		if len(msgs) > 0 {
			return Result{Degraded, strings.Join(msgs, ", ")}, nil
		}
	}
	msg := p.Status.Message
	switch p.Status.Phase {
	case corev1.PodPending:
		return Result{Progressing, msg}, nil
	case corev1.PodSucceeded:
		return Result{Healthy, msg}, nil
	case corev1.PodFailed:
		if msg != "" {
			return Result{Degraded, msg}, nil
		}
		for _, c := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			if m := failMessage(c); m != "" {
				return Result{Degraded, m}, nil
			}
		}
		return Result{Status: Degraded}, nil
	case corev1.PodRunning:
		if !longRunning {
			// A finite pod that runs is doing its job, not done with it.
			return Result{Progressing, msg}, nil
		}
		if podReady(p) {
			return Result{Healthy, msg}, nil
		}
		for _, c := range p.Status.ContainerStatuses {
			if c.LastTerminationState.Terminated != nil {
				return Result{Degraded, msg}, nil
			}
		}
		return Result{Progressing, msg}, nil
	}
	return Result{Unknown, msg}, nil
}

// failingWait tells the waiting reasons that mean a container is failing
// (CrashLoopBackOff, ImagePullBackOff, ErrImagePull, CreateContainerConfigError,
// ...) from those that mean it is merely starting (ContainerCreating).
func failingWait(reason string) bool {
	return strings.HasPrefix(reason, "Err") || strings.HasSuffix(reason, "Error") || strings.HasSuffix(reason, "BackOff")
}

func failMessage(c corev1.ContainerStatus) string {
	t := c.State.Terminated
	switch {
	case t == nil:
		return ""
	case t.Message != "":
		return t.Message
	case t.Reason == "OOMKilled":
		return t.Reason
	case t.ExitCode != 0:
		return fmt.Sprintf("container %q failed with exit code %d", c.Name, t.ExitCode)
	}
	return ""
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// isHook reports whether annotations make the object an Argo CD or Helm hook.
func isHook(a map[string]string) bool {
	return a["argocd.argoproj.io/hook"] != "" || a["helm.sh/hook"] != ""
}
