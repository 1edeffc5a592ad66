package health

import (
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// job is Progressing until a Complete, Failed or Suspended condition
// appears; then Healthy, Degraded or Suspended.
func job(obj *unstructured.Unstructured) (Result, error) {
	j, err := typed[batchv1.Job](obj)
	if err != nil {
		return Result{}, err
	}
	var done, failed, suspended bool
	var msg, failMsg string
	for _, c := range j.Status.Conditions {
		switch c.Type {
		case batchv1.JobFailed:
			done, failed, failMsg = true, true, c.Message
		case batchv1.JobComplete:
			done, msg = true, c.Message
		case batchv1.JobSuspended:
			done, msg = true, c.Message
			suspended = c.Status == corev1.ConditionTrue
		}
	}
	switch {
	case !done:
		return Result{Progressing, msg}, nil
	case failed:
		return Result{Degraded, failMsg}, nil
	case suspended:
		return Result{Suspended, msg}, nil
	}
	return Result{Healthy, msg}, nil
}

// cronJob judges the last run: a schedule after the last success with no
// job running means the last run failed. A CronJob that is suspended or
// has never run is Healthy with a message that says so, since nothing is
// wrong with the object itself.
func cronJob(obj *unstructured.Unstructured) (Result, error) {
	c, err := typed[batchv1.CronJob](obj)
	if err != nil {
		return Result{}, err
	}
	st := c.Status
	switch {
	case c.Spec.Suspend != nil && *c.Spec.Suspend:
		return Result{Healthy, "CronJob is Suspended"}, nil
	case len(st.Active) > 0:
		return Result{Healthy, "The job is running. Its last execution may not have been successful"}, nil
	case st.LastScheduleTime == nil:
		return Result{Healthy, "CronJob has not been scheduled yet"}, nil
	case st.LastSuccessfulTime == nil:
		return Result{Healthy, "The CronJob never completed successfully. It may not be healthy"}, nil
	case st.LastScheduleTime.After(st.LastSuccessfulTime.Time):
		return Result{Degraded, "CronJob has not completed its last execution successfully"}, nil
	}
	return Result{Healthy, "CronJob has completed its last execution successfully"}, nil
}
