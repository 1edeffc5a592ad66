package health

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func init() {
	register("argoproj.io", argoRollout, "Rollout")
	register("spot.io", argoRollout, "SpotDeployment")
	register("sparkoperator.k8s.io", sparkApplication, "SparkApplication")
	register("tower.ansible.com", ansibleJob, "AnsibleJob")
	register("work.karmada.io", karmadaBinding, "ResourceBinding", "ClusterResourceBinding")
	register("snapshot.storage.k8s.io", volumeSnapshot, "VolumeSnapshot", "VolumeSnapshotContent")
	register("policy", podDisruptionBudget, "PodDisruptionBudget")
	register("zookeeper.pravega.io", replicasReady, "ZookeeperCluster")
	register("solr.apache.org", replicasReady, "SolrCloud")
	byGroupSuffix["kafka.strimzi.io"] = strimzi
	byGroupSuffix["victoriametrics.com"] = victoriaMetrics
	byGroupSuffix["numaflow.numaproj.io"] = numaflow
}

// argoRollout follows Argo Rollouts' documented states. Its
// status.observedGeneration is a number in current versions and a hash
// in old ones; only a number behind the generation means "not observed".
func argoRollout(obj *unstructured.Unstructured) (Result, bool) {
	if noStatus(obj) {
		return r(Progressing, "Waiting for rollout spec update to be observed")
	}
	if og, err := strconv.ParseInt(str(obj, "status", "observedGeneration"), 10, 64); err == nil && og < obj.GetGeneration() {
		return r(Progressing, "Waiting for rollout spec update to be observed")
	}
	if w := obj.GetAnnotations()["rollout.argoproj.io/workload-generation"]; w != "" && has(obj, "status", "workloadObservedGeneration") &&
		w != str(obj, "status", "workloadObservedGeneration") {
		return r(Progressing, "Waiting for rollout spec update to be observed")
	}
	c := condsOf(obj)
	switch {
	case c.is("InvalidSpec", "True"):
		return r(Degraded, c.msg("InvalidSpec"))
	case str(obj, "status", "phase") == "Degraded":
		return r(Degraded, str(obj, "status", "message"))
	case isTrue(obj, "status", "abort"):
		return r(Degraded, "Rollout is aborted")
	case c.is("Progressing", "False") && c["Progressing"].Reason == "ProgressDeadlineExceeded":
		return r(Degraded, c.msg("Progressing"))
	}
	pauses, _, _ := unstructured.NestedSlice(obj.Object, "status", "pauseConditions")
	if isTrue(obj, "spec", "paused") || len(pauses) > 0 || isTrue(obj, "status", "controllerPause") {
		return r(Suspended, "Rollout is paused")
	}
	replicas, _ := num(obj, "status", "replicas")
	updated, _ := num(obj, "status", "updatedReplicas")
	available, _ := num(obj, "status", "availableReplicas")
	switch {
	case !has(obj, "status", "updatedReplicas"):
		// Nothing to count: the conditions above had their say.
	case updated < replicas:
		return r(Progressing, "Waiting for roll out to finish: More replicas need to be updated")
	case available < updated:
		return r(Progressing, "Waiting for roll out to finish: updated replicas are still becoming available")
	}
	return r(Healthy, "")
}

var sparkStates = map[string]Status{"running": Healthy, "completed": Healthy, "failed": Degraded,
	"submission_failed": Degraded, "failing": Degraded, "invalidating": Progressing, "pending_rerun": Progressing,
	"submitted": Progressing, "succeeding": Progressing, "new": Progressing, "unknown": Unknown, "": Progressing}

func sparkApplication(obj *unstructured.Unstructured) (Result, bool) {
	s := str(obj, "status", "applicationState", "state")
	if st, ok := word(s, sparkStates); ok {
		return r(st, "SparkApplication is "+s)
	}
	return r(Progressing, s)
}

var ansibleStates = map[string]Status{"successful": Healthy, "failed": Degraded, "error": Degraded, "canceled": Degraded}

func ansibleJob(obj *unstructured.Unstructured) (Result, bool) {
	s := str(obj, "status", "ansibleJobResult", "status")
	if st, ok := word(s, ansibleStates); ok {
		return r(st, s+" job - "+str(obj, "status", "ansibleJobResult", "url"))
	}
	return r(Progressing, "Job is running")
}

// karmadaBinding: a binding is healthy when every member cluster applied
// the resource and none reports it unhealthy.
func karmadaBinding(obj *unstructured.Unstructured) (Result, bool) {
	list, _, _ := unstructured.NestedSlice(obj.Object, "status", "aggregatedStatus")
	if len(list) == 0 {
		return r(Progressing, "Waiting for the resource to be propagated")
	}
	for _, item := range list {
		m, _ := item.(map[string]any)
		if applied, ok := m["applied"].(bool); ok && !applied || m["health"] == "Unhealthy" {
			return r(Degraded, "Current resource status is unhealthy")
		}
	}
	return r(Healthy, "")
}

func volumeSnapshot(obj *unstructured.Unstructured) (Result, bool) {
	switch {
	case isTrue(obj, "status", "readyToUse"):
		return r(Healthy, "Ready to use")
	case str(obj, "status", "error", "message") != "":
		return r(Degraded, strings.TrimSpace(str(obj, "status", "error", "message")))
	}
	return r(Progressing, "Waiting for the snapshot to be ready")
}

func podDisruptionBudget(obj *unstructured.Unstructured) (Result, bool) {
	if noStatus(obj) {
		return r(Progressing, "Waiting for status")
	}
	for _, c := range conditions(obj) {
		if c.Reason == "SyncFailed" {
			return r(Degraded, "PodDisruptionBudget has SyncFailed")
		}
	}
	if c, ok := condsOf(obj)["DisruptionAllowed"]; ok {
		return r(Healthy, "PodDisruptionBudget has "+c.Reason)
	}
	return r(Healthy, "")
}

func replicasReady(obj *unstructured.Unstructured) (Result, bool) {
	want, ok1 := num(obj, "status", "replicas")
	ready, _ := num(obj, "status", "readyReplicas")
	if !ok1 || ready < want || want == 0 {
		return r(Progressing, fmt.Sprintf("%d/%d replicas ready", ready, want))
	}
	return r(Healthy, fmt.Sprintf("%d/%d replicas ready", ready, want))
}

// strimzi: Strimzi reports Ready or NotReady conditions; its
// observedGeneration lags on objects being deleted, so conditions
// decide.
func strimzi(obj *unstructured.Unstructured) (Result, bool) {
	c := condsOf(obj)
	switch {
	case noStatus(obj):
		return r(Progressing, "Waiting for "+obj.GetKind())
	case c.is("NotReady", "True"):
		return r(Degraded, c.msg("NotReady"))
	case c.is("Ready", "True"):
		return r(Healthy, "")
	}
	return r(Progressing, "Waiting for "+obj.GetKind())
}

var vmUpdateStatuses = map[string]Status{"operational": Healthy, "failed": Degraded, "paused": Suspended, "expanding": Progressing}

func victoriaMetrics(obj *unstructured.Unstructured) (Result, bool) {
	if noStatus(obj) || generationBehind(obj) {
		return r(Progressing, "Waiting for the operator to reconcile")
	}
	s := str(obj, "status", "updateStatus")
	if st, ok := word(s, vmUpdateStatuses); ok {
		return r(st, orElse(str(obj, "status", "reason"), s))
	}
	return r(Progressing, "Reconciliation in progress")
}

// numaflow: every *Healthy condition must hold, and a failed progressive
// upgrade is a failure.
func numaflow(obj *unstructured.Unstructured) (Result, bool) {
	if noStatus(obj) || generationBehind(obj) {
		return r(Progressing, "Waiting for "+obj.GetKind()+" status")
	}
	if obj.GetLabels()["numaplane.numaproj.io/progressive-result-state"] == "failed" {
		return r(Degraded, "Failed progressive upgrade")
	}
	for _, c := range conditions(obj) {
		if strings.HasSuffix(c.Type, "Healthy") && c.Status == "False" {
			return r(Degraded, message(c))
		}
	}
	if str(obj, "status", "phase") == "Failed" {
		return r(Degraded, str(obj, "status", "message"))
	}
	return Generic(obj)
}
