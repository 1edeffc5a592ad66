package health

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Rules for operators' kinds, written from each project's documented
// status semantics. Registered in init so each file adds its own.

func register(group string, rule kindRule, kinds ...string) {
	for _, k := range kinds {
		byKind[schema.GroupKind{Group: group, Kind: k}] = rule
	}
}

func init() {
	byGroupSuffix["cnrm.cloud.google.com"] = configConnector
	byGroupSuffix["crossplane.io"] = crossplane
	byGroupSuffix["upbound.io"] = crossplane
	byGroupSuffix["services.k8s.aws"] = ackResource
	byGroupSuffix["3scale.net"] = threeScale
	byGroupSuffix["core.humio.com"] = humio

	register("acid.zalan.do", zalandoPostgres, "postgresql")
	register("apps.kruise.io", kruiseAdvancedCronJob, "AdvancedCronJob")
	register("apps.kruise.io", kruiseBroadcastJob, "BroadcastJob")
	register("apps.kruise.io", kruiseWorkload, "CloneSet", "StatefulSet")
	register("apps.kruise.io", kruiseDaemonSet, "DaemonSet")
	register("argoproj.io", analysisRun, "AnalysisRun")
	register("argoproj.io", applicationSet, "ApplicationSet")
	register("argoproj.io", cronWorkflow, "CronWorkflow")
	register("cassandra.rook.io", cassandraCluster, "Cluster")
	register("cdi.kubevirt.io", dataVolume, "DataVolume")
	register("ceph.rook.io", cephCluster, "CephCluster")
	register("cert-manager.io", certificate, "Certificate")
	register("certmanager.k8s.io", certificate, "Certificate")
	register("cluster.x-k8s.io", capiCluster, "Cluster")
	register("cluster.x-k8s.io", capiMachineDeployment, "MachineDeployment")
	register("cluster.x-k8s.io", capiMachineHealthCheck, "MachineHealthCheck")
	register("controlplane.cluster.x-k8s.io", awsManagedControlPlane, "AWSManagedControlPlane")
}

// configConnector: Google Config Connector resources report Ready; a
// dependency not ready yet is a wait on something else (Suspended); the
// ConfigConnector operator kinds report a healthy flag.
func configConnector(obj *unstructured.Unstructured) (Result, bool) {
	if noStatus(obj) {
		return r(Progressing, "Waiting for status")
	}
	if generationBehind(obj) {
		return r(Progressing, "Update in progress")
	}
	if has(obj, "status", "healthy") {
		if isTrue(obj, "status", "healthy") {
			return r(Healthy, obj.GetKind()+" is healthy")
		}
		return r(Degraded, obj.GetKind()+" is not healthy")
	}
	c := condsOf(obj)
	ready, ok := c["Ready"]
	switch {
	case !ok:
		return r(Progressing, "Waiting for the Ready condition")
	case ready.Status == "True":
		return r(Healthy, ready.Message)
	case ready.Reason == "DependencyNotReady":
		return r(Suspended, ready.Message)
	case ready.Reason == "Updating" || ready.Status == "Unknown":
		return r(Progressing, ready.Message)
	}
	return r(Degraded, ready.Message)
}

// crossplaneConfigKinds have no controller status of their own.
var crossplaneConfigKinds = map[string]bool{"Composition": true, "CompositionRevision": true, "ProviderConfig": true,
	"ProviderConfigUsage": true, "EnvironmentConfig": true, "DeploymentRuntimeConfig": true, "ControllerConfig": true,
	"ClusterProviderConfig": true, "Usage": true}

// crossplane: managed resources are Synced (the last reconcile worked)
// and Ready (the external resource is available); packages are Installed
// and Healthy.
func crossplane(obj *unstructured.Unstructured) (Result, bool) {
	if noStatus(obj) {
		if crossplaneConfigKinds[obj.GetKind()] {
			return r(Healthy, "Resource is up-to-date.")
		}
		return r(Progressing, "Waiting for status")
	}
	c := condsOf(obj)
	if s, ok := c["Synced"]; ok && s.Status == "False" {
		if s.Reason == "ReconcilePaused" {
			return r(Suspended, s.Reason)
		}
		return r(Degraded, message(s))
	}
	_, inst := c["Installed"]
	_, hl := c["Healthy"]
	if inst || hl {
		switch {
		case c.is("Installed", "True") && c.is("Healthy", "True"):
			return r(Healthy, c["Installed"].Reason+" "+c["Healthy"].Reason)
		case c.is("Installed", "False") || c.is("Healthy", "False"):
			return r(Degraded, c["Installed"].Reason+" "+c["Healthy"].Reason)
		}
		return r(Progressing, "Package is being installed")
	}
	if rh, ok := c["RevisionHealthy"]; ok {
		if rh.Status == "True" {
			return r(Healthy, "Resource is up-to-date.")
		}
		return r(Degraded, message(rh))
	}
	if ready, ok := c["Ready"]; ok {
		if ready.Status == "True" {
			return r(Healthy, message(ready))
		}
		return r(Progressing, message(ready))
	}
	if len(c) == 0 && crossplaneConfigKinds[obj.GetKind()] {
		return r(Healthy, "Resource is up-to-date.")
	}
	return r(Progressing, "Waiting for the resource to be ready")
}

// ackResource: AWS Controllers for Kubernetes mark unrecoverable errors
// with ACK.Terminal; otherwise ResourceSynced and Ready tell progress.
func ackResource(obj *unstructured.Unstructured) (Result, bool) {
	c := condsOf(obj)
	for typ, x := range c {
		if strings.HasSuffix(typ, ".Terminal") && x.Status == "True" {
			return r(Degraded, message(x))
		}
	}
	if x, ok := c["ACK.Recoverable"]; ok && x.Status == "True" {
		return r(Degraded, message(x))
	}
	if ready, ok := c["Ready"]; ok {
		if ready.Status == "True" {
			return r(Healthy, ready.Message)
		}
		return r(Progressing, message(ready))
	}
	if s, ok := c["ACK.ResourceSynced"]; ok {
		if s.Status == "True" {
			return r(Healthy, s.Message)
		}
		return r(Progressing, message(s))
	}
	return r(Progressing, "Waiting for resource to be ready")
}

// threeScale: the 3scale operator reports Ready/Synced, Failed and
// Invalid; Waiting and a suspended state wait on an administrator. A
// False condition without a reason means it has not been decided yet.
func threeScale(obj *unstructured.Unstructured) (Result, bool) {
	if noStatus(obj) {
		return r(Progressing, "Waiting for status")
	}
	c := condsOf(obj)
	for _, typ := range []string{"Failed", "Invalid", "Orphan"} {
		if c.is(typ, "True") {
			return r(Degraded, c.msg(typ))
		}
	}
	if c.is("Waiting", "True") || strings.EqualFold(str(obj, "status", "state"), "suspended") ||
		strings.EqualFold(str(obj, "status", "developerUserState"), "suspended") {
		return r(Suspended, "Waiting for approval")
	}
	if c.is("In-progress", "True") {
		return r(Progressing, "In progress")
	}
	for _, typ := range []string{"Ready", "Synced", "Available"} {
		x, ok := c[typ]
		if !ok {
			continue
		}
		switch {
		case x.Status == "True":
			return r(Healthy, x.Message)
		case x.Reason == "" && x.Message == "":
			return r(Progressing, "Waiting for status")
		}
		return r(Degraded, message(x))
	}
	return r(Progressing, "Waiting for status")
}

var humioStates = map[string]Status{"exists": Healthy, "running": Healthy, "notfound": Missing, "configerror": Degraded,
	"unknown": Unknown, "restarting": Progressing, "upgrading": Progressing, "pending": Progressing}

// humio: every Humio kind reports one state word.
func humio(obj *unstructured.Unstructured) (Result, bool) {
	state := str(obj, "status", "state")
	if state == "" {
		return r(Progressing, "Update in progress")
	}
	if st, ok := word(state, humioStates); ok {
		return r(st, "Component state: "+state+".")
	}
	return r(Progressing, "Component state: "+state+".")
}

func zalandoPostgres(obj *unstructured.Unstructured) (Result, bool) {
	s := str(obj, "status", "PostgresClusterStatus")
	switch {
	case s == "Running":
		return r(Healthy, s)
	case strings.Contains(s, "Failed"):
		return r(Degraded, s)
	}
	return r(Progressing, orElse(s, "Waiting for postgres cluster status..."))
}

func orElse(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func kruiseAdvancedCronJob(obj *unstructured.Unstructured) (Result, bool) {
	switch {
	case isTrue(obj, "spec", "paused"):
		return r(Suspended, "AdvancedCronJob is Paused")
	case has(obj, "status", "active") && len(obj.Object["status"].(map[string]any)["active"].([]any)) > 0:
		return r(Progressing, "AdvancedCronJobs has active jobs")
	case str(obj, "status", "lastScheduleTime") == "":
		return r(Degraded, "AdvancedCronJobs has not run successfully")
	}
	return r(Healthy, "AdvancedCronJobs has run successfully")
}

func kruiseBroadcastJob(obj *unstructured.Unstructured) (Result, bool) {
	switch strings.ToLower(str(obj, "status", "phase")) {
	case "completed":
		return r(Healthy, "BroadcastJob is completed successfully")
	case "failed":
		return r(Degraded, "BroadcastJob failed")
	case "paused":
		return r(Suspended, "BroadcastJob is Paused")
	}
	return r(Progressing, "BroadcastJob is still running")
}

// kruiseWorkload: CloneSet and Advanced StatefulSet. A paused update or a
// partition that holds replicas back waits for a person.
func kruiseWorkload(obj *unstructured.Unstructured) (Result, bool) {
	if noStatus(obj) || generationBehind(obj) {
		return r(Progressing, "Waiting for initialization")
	}
	strategy := []string{"spec", "updateStrategy"}
	if obj.GetKind() == "StatefulSet" {
		strategy = append(strategy, "rollingUpdate")
	}
	replicas, _ := num(obj, "status", "replicas")
	updated, hasUpdated := num(obj, "status", "updatedReplicas")
	available, _ := num(obj, "status", "updatedAvailableReplicas")
	partition, _ := num(obj, append(strategy, "partition")...)
	switch {
	case isTrue(obj, append(strategy, "paused")...):
		return r(Suspended, obj.GetKind()+" is paused")
	case partition > 0 && hasUpdated && updated < replicas:
		return r(Suspended, obj.GetKind()+" needs manual intervention")
	case available < replicas:
		return r(Degraded, "Some replicas are not ready or available")
	}
	return r(Healthy, "All "+obj.GetKind()+" workloads are ready and updated")
}

func kruiseDaemonSet(obj *unstructured.Unstructured) (Result, bool) {
	desired, _ := num(obj, "status", "desiredNumberScheduled")
	if noStatus(obj) || generationBehind(obj) || desired == 0 {
		return r(Progressing, "Waiting for initialization")
	}
	updated, _ := num(obj, "status", "updatedNumberScheduled")
	available, _ := num(obj, "status", "numberAvailable")
	partition, _ := num(obj, "spec", "updateStrategy", "rollingUpdate", "partition")
	switch {
	case isTrue(obj, "spec", "updateStrategy", "rollingUpdate", "paused"):
		return r(Suspended, "Daemonset is paused")
	case partition > 0 && updated < desired:
		return r(Suspended, "Daemonset needs manual intervention")
	case available < desired:
		return r(Degraded, "Some pods are not ready or available")
	}
	return r(Healthy, "All Daemonset workloads are ready and updated")
}

var analysisPhases = map[string]Status{"pending": Progressing, "running": Progressing, "successful": Healthy,
	"failed": Degraded, "error": Degraded, "inconclusive": Unknown}

func analysisRun(obj *unstructured.Unstructured) (Result, bool) {
	p := str(obj, "status", "phase")
	if st, ok := word(p, analysisPhases); ok {
		return r(st, str(obj, "status", "message"))
	}
	return r(Progressing, "Waiting for analysis run to finish")
}

func applicationSet(obj *unstructured.Unstructured) (Result, bool) {
	c := condsOf(obj)
	switch {
	case c.is("ErrorOccurred", "True"):
		return r(Degraded, c.msg("ErrorOccurred"))
	case c.is("RolloutProgressing", "True"):
		return r(Progressing, c.msg("RolloutProgressing"))
	case c.is("ResourcesUpToDate", "False"):
		return r(Degraded, c.msg("ResourcesUpToDate"))
	case c.is("ResourcesUpToDate", "True"):
		return r(Healthy, c.msg("ResourcesUpToDate"))
	}
	return r(Progressing, "Waiting for the status to be reported")
}

// cronWorkflow: a CronWorkflow is healthy unless its spec or a
// submission failed.
func cronWorkflow(obj *unstructured.Unstructured) (Result, bool) {
	c := condsOf(obj)
	for _, typ := range []string{"SpecError", "SubmissionError"} {
		if c.is(typ, "True") {
			return r(Degraded, c.msg(typ))
		}
	}
	return r(Healthy, "CronWorkflow is healthy.")
}

func cassandraCluster(obj *unstructured.Unstructured) (Result, bool) {
	racks, ok, _ := unstructured.NestedMap(obj.Object, "status", "racks")
	if !ok || len(racks) == 0 {
		return r(Progressing, "Waiting for Cassandra Cluster")
	}
	for _, v := range racks {
		rack, _ := v.(map[string]any)
		if fmt.Sprint(rack["members"]) != fmt.Sprint(rack["readyMembers"]) {
			return r(Progressing, "Waiting for Cassandra Cluster")
		}
	}
	return r(Healthy, "")
}

func dataVolume(obj *unstructured.Unstructured) (Result, bool) {
	c := condsOf(obj)
	phase := str(obj, "status", "phase")
	switch {
	case phase == "Succeeded":
		return r(Healthy, phase)
	case phase == "Failed":
		return r(Degraded, phase)
	case c.is("Running", "False") && c["Running"].Reason == "Error":
		return r(Degraded, c["Running"].Message)
	case phase == "Paused":
		return r(Suspended, phase)
	}
	return r(Progressing, orElse(phase, "No status available"))
}

func cephCluster(obj *unstructured.Unstructured) (Result, bool) {
	state := str(obj, "status", "state")
	h := str(obj, "status", "ceph", "health")
	switch {
	case state == "Creating" || state == "Updating" || state == "Connecting":
		return r(Progressing, str(obj, "status", "message"))
	case state == "Error":
		return r(Degraded, str(obj, "status", "message"))
	case h == "HEALTH_OK":
		return r(Healthy, "Ceph health is "+h)
	case h == "HEALTH_WARN" || h == "HEALTH_ERR":
		return r(Degraded, "Ceph health is "+h)
	}
	return r(Progressing, "Waiting for status to be reported")
}

// certificate: cert-manager sets Issuing while it requests a certificate;
// Ready=False then is a step on the way, not a failure.
func certificate(obj *unstructured.Unstructured) (Result, bool) {
	c := condsOf(obj)
	if c.is("Issuing", "True") {
		return r(Progressing, c.msg("Issuing"))
	}
	return Generic(obj)
}

func capiCluster(obj *unstructured.Unstructured) (Result, bool) {
	if isTrue(obj, "spec", "paused") {
		return r(Suspended, "Cluster is paused")
	}
	switch str(obj, "status", "phase") {
	case "Failed":
		return r(Degraded, str(obj, "status", "failureMessage"))
	case "Pending", "Provisioning", "Deleting":
		return r(Progressing, "Waiting for clusters")
	}
	return Generic(obj)
}

func capiMachineDeployment(obj *unstructured.Unstructured) (Result, bool) {
	if isTrue(obj, "spec", "paused") {
		return r(Suspended, "MachineDeployment is paused")
	}
	switch str(obj, "status", "phase") {
	case "Running":
		return r(Healthy, "Machines are running under this deployment")
	case "ScalingUp", "ScalingDown":
		return r(Progressing, "Cluster is scaling machines")
	case "Failed":
		return r(Degraded, "MachineDeployment is failed")
	}
	return Generic(obj)
}

func capiMachineHealthCheck(obj *unstructured.Unstructured) (Result, bool) {
	healthy, ok1 := num(obj, "status", "currentHealthy")
	expected, ok2 := num(obj, "status", "expectedMachines")
	if !ok1 || !ok2 {
		return r(Progressing, "Waiting for status")
	}
	if healthy < expected {
		return r(Degraded, fmt.Sprintf("%d of %d machines are healthy", healthy, expected))
	}
	return r(Healthy, "")
}

func awsManagedControlPlane(obj *unstructured.Unstructured) (Result, bool) {
	if m := str(obj, "status", "failureMessage"); m != "" {
		return r(Degraded, m)
	}
	if generationBehind(obj) {
		return r(Progressing, "Waiting for the control plane spec to be reconciled")
	}
	c := condsOf(obj)
	if c.is("EKSControlPlaneUpdating", "True") {
		return r(Progressing, "EKS control plane is updating")
	}
	for _, x := range conditions(obj) {
		if x.Status == "False" && strings.Contains(x.Reason, "Failed") {
			return r(Degraded, message(x))
		}
	}
	ready, ok := c["Ready"]
	switch {
	case !ok:
		return r(Progressing, "Control plane is not ready")
	case ready.Status == "True":
		return r(Healthy, "Control plane is ready")
	case ready.Message != "":
		return r(Degraded, ready.Message)
	}
	return r(Progressing, "Control plane is not ready")
}
