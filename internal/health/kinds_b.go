package health

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func init() {
	byGroupSuffix["promoter.argoproj.io"] = promoter
	byGroupSuffix["rabbitmq.com"] = rabbitmq
	byGroupSuffix["k8s.elastic.co"] = elastic
	byGroupSuffix["numaplane.numaproj.io"] = numaplane
	byGroupSuffix["platform.confluent.io"] = confluent
	byGroupSuffix["microgateway.airlock.com"] = gatewayPolicy

	for _, k := range []string{"HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute"} {
		register("gateway.networking.k8s.io", gatewayRoute, k)
	}
	register("gateway.networking.k8s.io", gatewayPolicy, "BackendTLSPolicy", "BackendLBPolicy")
	register("gateway.networking.k8s.io", gateway, "Gateway")
	register("flink.apache.org", flinkDeployment, "FlinkDeployment")
	register("game.kruise.io", gameServer, "GameServer")
	register("game.kruise.io", gameServerSet, "GameServerSet")
	register("grafana.integreatly.org", grafana, "Grafana")
	register("grafana.integreatly.org", grafanaDatasource, "GrafanaDatasource")
	register("iammanager.keikoproj.io", iamRole, "Iamrole")
	register("jaegertracing.io", jaeger, "Jaeger")
	register("k8s.keycloak.org", keycloak, "Keycloak")
	register("kubevirt.io", virtualMachine, "VirtualMachine")
	register("kubevirt.io", virtualMachineInstance, "VirtualMachineInstance")
	register("karpenter.sh", nodeClaim, "NodeClaim")
	register("kubernetes-client.io", legacyExternalSecret, "ExternalSecret")
	register("networking.gke.io", managedCertificate, "ManagedCertificate")
	register("nmstate.io", nncp, "NodeNetworkConfigurationPolicy")
	register("external-secrets.io", clusterExternalSecret, "ClusterExternalSecret")
	register("lifecycle.keptn.sh", keptnEvaluation, "KeptnEvaluation")
	register("metrics.keptn.sh", keptnMetric, "KeptnMetric")
	register("metrics.keptn.sh", keptnAnalysis, "Analysis")
	register("minio.min.io", minioTenant, "Tenant")
	register("pxc.percona.com", percona, "PerconaXtraDBCluster")
	register("psmdb.percona.com", percona, "PerconaServerMongoDB")
	register("rollouts.kruise.io", kruiseRollout, "Rollout")
	register("route.openshift.io", openshiftRoute, "Route")
	register("opentelemetry.io", otelCollector, "OpenTelemetryCollector")
	register("operators.coreos.com", olmSubscription, "Subscription")
	register("openfaas.com", openfaasFunction, "Function")
	register("core.spinkube.dev", spinApp, "SpinApp")
}

func flinkDeployment(obj *unstructured.Unstructured) (Result, bool) {
	switch str(obj, "status", "jobManagerDeploymentStatus") {
	case "READY", "MISSING":
		if s := str(obj, "status", "reconciliationStatus", "success"); s == "false" {
			return r(Degraded, str(obj, "status", "reconciliationStatus", "error"))
		}
		return r(Healthy, "")
	case "ERROR":
		return r(Degraded, orElse(str(obj, "status", "reconciliationStatus", "error"), str(obj, "status", "error")))
	}
	return r(Progressing, "Waiting for deploying")
}

func gameServer(obj *unstructured.Unstructured) (Result, bool) {
	if noStatus(obj) {
		return r(Unknown, "Waiting for GameServer to be ready")
	}
	for _, c := range conditions(obj) {
		if c.Status == "False" {
			return r(Degraded, "Pod is not ready: "+c.Type)
		}
	}
	cur, want := str(obj, "status", "currentState"), str(obj, "status", "desiredState")
	if cur == "Ready" && (want == "" || want == cur) {
		return r(Healthy, "GameServer is Ready")
	}
	return r(Progressing, "State change: "+cur+" → "+want)
}

func gameServerSet(obj *unstructured.Unstructured) (Result, bool) {
	if noStatus(obj) || generationBehind(obj) {
		return r(Progressing, "Waiting for GameServerSet initialization")
	}
	replicas, _ := num(obj, "status", "replicas")
	updated, _ := num(obj, "status", "updatedReplicas")
	ready, _ := num(obj, "status", "readyReplicas")
	partition, _ := num(obj, "spec", "updateStrategy", "rollingUpdate", "partition")
	switch {
	case isTrue(obj, "spec", "updateStrategy", "rollingUpdate", "paused"):
		return r(Suspended, "GameServerSet is paused")
	case partition > 0 && updated < replicas:
		return r(Suspended, fmt.Sprintf("Partition=%d, waiting for manual intervention", partition))
	case ready < replicas:
		return r(Progressing, fmt.Sprintf("ReadyReplicas %d/%d, still progressing", ready, replicas))
	}
	return r(Healthy, "All GameServerSet replicas are updated and ready")
}

func grafana(obj *unstructured.Unstructured) (Result, bool) {
	switch {
	case str(obj, "status", "stageStatus") == "failed":
		return r(Degraded, "Failed at stage "+str(obj, "status", "stage"))
	case str(obj, "status", "stage") == "complete" && str(obj, "status", "stageStatus") == "success":
		return r(Healthy, "")
	}
	return r(Progressing, str(obj, "status", "stage"))
}

func grafanaDatasource(obj *unstructured.Unstructured) (Result, bool) {
	switch {
	case isTrue(obj, "status", "NoMatchingInstances"):
		return r(Degraded, "can't find matching grafana instance")
	case str(obj, "status", "uid") != "" && str(obj, "status", "lastResync") != "":
		return r(Healthy, "")
	}
	return Generic(obj)
}

func iamRole(obj *unstructured.Unstructured) (Result, bool) {
	switch st := str(obj, "status", "state"); {
	case noStatus(obj):
		return r(Progressing, "Waiting for Iamrole to be reconciled")
	case st == "Ready":
		return r(Healthy, "Role exists")
	case str(obj, "status", "errorDescription") != "":
		return r(Degraded, str(obj, "status", "errorDescription"))
	}
	return r(Progressing, "Waiting for Iamrole to be reconciled")
}

func jaeger(obj *unstructured.Unstructured) (Result, bool) {
	switch str(obj, "status", "phase") {
	case "Running":
		return r(Healthy, "Jaeger is Running")
	case "Failed":
		return r(Degraded, "Jaeger Failed")
	}
	return r(Progressing, "Waiting for Jaeger")
}

func keycloak(obj *unstructured.Unstructured) (Result, bool) {
	c := condsOf(obj)
	switch {
	case noStatus(obj):
		return r(Progressing, "Waiting for Keycloak status conditions to exist")
	case c.is("HasErrors", "True"):
		return r(Degraded, "Has Errors: "+c.msg("HasErrors"))
	case c.is("RollingUpdate", "True"):
		return r(Progressing, c.msg("RollingUpdate"))
	case c.is("Ready", "True"):
		return r(Healthy, "")
	}
	return r(Progressing, c.msg("Ready"))
}

var vmStatuses = map[string]Status{"running": Healthy, "stopped": Suspended, "paused": Suspended, "starting": Progressing,
	"provisioning": Progressing, "stopping": Progressing, "migrating": Progressing, "terminating": Progressing,
	"crashloopbackoff": Degraded, "errimagepull": Degraded, "imagepullbackoff": Degraded, "errorunschedulable": Degraded,
	"errorpvcnotfound": Degraded, "datavolumeerror": Degraded}

func virtualMachine(obj *unstructured.Unstructured) (Result, bool) {
	ps := str(obj, "status", "printableStatus")
	if st, ok := word(ps, vmStatuses); ok {
		return r(st, ps)
	}
	if condsOf(obj).is("Paused", "True") {
		return r(Suspended, "Paused")
	}
	return r(Progressing, orElse(ps, "No status available"))
}

var vmiPhases = map[string]Status{"running": Healthy, "succeeded": Suspended, "failed": Degraded, "pending": Progressing,
	"scheduling": Progressing, "scheduled": Progressing, "unknown": Unknown}

func virtualMachineInstance(obj *unstructured.Unstructured) (Result, bool) {
	if condsOf(obj).is("Paused", "True") {
		return r(Suspended, "VMI was paused by user")
	}
	p := str(obj, "status", "phase")
	if st, ok := word(p, vmiPhases); ok {
		return r(st, p)
	}
	return r(Progressing, orElse(p, "No status available"))
}

// nodeClaim: a NodeClaim being disrupted (expired, drifted, empty) is on
// its way out by design.
func nodeClaim(obj *unstructured.Unstructured) (Result, bool) {
	c := condsOf(obj)
	if c.is("Disrupting", "True") {
		return r(Suspended, c.msg("Disrupting"))
	}
	for _, typ := range []string{"Launched", "Registered", "Initialized"} {
		if c.is(typ, "False") {
			return r(Degraded, c.msg(typ))
		}
	}
	if ready, ok := c["Ready"]; ok && ready.Status == "False" {
		return r(Degraded, message(ready))
	}
	return Generic(obj)
}

func legacyExternalSecret(obj *unstructured.Unstructured) (Result, bool) {
	s := str(obj, "status", "status")
	switch {
	case s == "SUCCESS":
		return r(Healthy, "Fetched ExternalSecret.")
	case strings.HasPrefix(s, "ERROR"):
		return r(Degraded, strings.TrimSpace(strings.TrimPrefix(s, "ERROR,")))
	}
	return r(Progressing, "Waiting for ExternalSecret.")
}

func managedCertificate(obj *unstructured.Unstructured) (Result, bool) {
	domains, _, _ := unstructured.NestedSlice(obj.Object, "status", "domainStatus")
	for _, d := range domains {
		m, _ := d.(map[string]any)
		if s := fmt.Sprint(m["status"]); strings.HasPrefix(s, "Failed") {
			return r(Degraded, "At least one certificate has failed to be provisioned")
		}
	}
	if str(obj, "status", "certificateStatus") == "Active" {
		return r(Healthy, "All certificates are active")
	}
	return r(Progressing, "At least one certificate is still being provisioned")
}

// nncp: a policy that matches no node is ignored, not failed.
func nncp(obj *unstructured.Unstructured) (Result, bool) {
	if condsOf(obj).is("Ignored", "True") {
		return r(Suspended, "NoMatchingNode")
	}
	return Generic(obj)
}

func clusterExternalSecret(obj *unstructured.Unstructured) (Result, bool) {
	failed, _, _ := unstructured.NestedSlice(obj.Object, "status", "failedNamespaces")
	if len(failed) > 0 {
		return r(Degraded, "one or more namespaces failed")
	}
	return Generic(obj)
}

var keptnOverall = map[string]Status{"succeeded": Healthy, "failed": Degraded, "progressing": Progressing, "pending": Progressing}

func keptnEvaluation(obj *unstructured.Unstructured) (Result, bool) {
	if st, ok := word(str(obj, "status", "overallStatus"), keptnOverall); ok {
		return r(st, "KeptnEvaluation is "+strings.ToLower(string(st)))
	}
	return r(Progressing, "KeptnEvaluation is progressing")
}

func keptnMetric(obj *unstructured.Unstructured) (Result, bool) {
	switch {
	case str(obj, "status", "errMsg") != "":
		return r(Degraded, "KeptnMetric is degraded")
	case has(obj, "status", "value"):
		return r(Healthy, "KeptnMetric is healthy")
	}
	return r(Progressing, "KeptnMetric is progressing")
}

func keptnAnalysis(obj *unstructured.Unstructured) (Result, bool) {
	if str(obj, "status", "state") != "Completed" {
		return r(Progressing, "Analysis is progressing")
	}
	if has(obj, "status", "pass") && !isTrue(obj, "status", "pass") {
		return r(Degraded, "Analysis is degraded")
	}
	return r(Healthy, "Analysis is healthy")
}

// minioDegraded are the MinIO operator's tenant states that need a
// person; every other state is a step of provisioning.
var minioDegraded = []string{"Statefulset not controlled by operator", "Another MinIO Tenant already exists",
	"Tenant credentials are not set properly", "Different versions across MinIO Pools", "Pool Decommissioning Not Allowed"}

func minioTenant(obj *unstructured.Unstructured) (Result, bool) {
	s := str(obj, "status", "currentState")
	if s == "Initialized" {
		return r(Healthy, s)
	}
	for _, d := range minioDegraded {
		if strings.HasPrefix(s, d) {
			return r(Degraded, s)
		}
	}
	return r(Progressing, orElse(s, "No status info available"))
}

var perconaStates = map[string]Status{"ready": Healthy, "initializing": Progressing, "paused": Suspended,
	"stopping": Progressing, "error": Degraded}

func percona(obj *unstructured.Unstructured) (Result, bool) {
	s := strings.ToLower(str(obj, "status", "state"))
	if s == "" {
		s = strings.ToLower(str(obj, "status", "mongos", "status"))
	}
	ready, _ := num(obj, "status", "ready")
	size, _ := num(obj, "status", "size")
	if obj.GetKind() == "PerconaXtraDBCluster" && s == "stopping" {
		return r(Degraded, fmt.Sprintf("Cluster is stopping (%d/%d node(s) are ready)", ready, size))
	}
	if st, ok := word(s, perconaStates); ok {
		if st == Suspended && obj.GetKind() == "PerconaXtraDBCluster" {
			return r(Unknown, "Cluster is paused")
		}
		return r(st, fmt.Sprintf("%d/%d node(s) are ready", ready, size))
	}
	return r(Unknown, "Cluster status is unknown")
}

func kruiseRollout(obj *unstructured.Unstructured) (Result, bool) {
	phase := str(obj, "status", "phase")
	state := str(obj, "status", "canaryStatus", "currentStepState")
	switch {
	case phase == "Disabled" || phase == "Terminating":
		return r(Degraded, "Rollout is Disabled or Terminating")
	case phase == "Healthy" || state == "Completed":
		return r(Healthy, "Rollout is Completed")
	case state == "StepPaused":
		return r(Suspended, "Rollout is Paused need manual intervention")
	}
	return r(Progressing, "Rollout is still progressing")
}

func openshiftRoute(obj *unstructured.Unstructured) (Result, bool) {
	ingress, _, _ := unstructured.NestedSlice(obj.Object, "status", "ingress")
	admitted := false
	for _, i := range ingress {
		m, _ := i.(map[string]any)
		for _, c := range conditions(&unstructured.Unstructured{Object: map[string]any{"status": m}}) {
			if c.Type != "Admitted" {
				continue
			}
			switch c.Status {
			case "False":
				return r(Degraded, "Route is degraded")
			case "True":
				admitted = true
			}
		}
	}
	if admitted {
		return r(Healthy, "Route is healthy")
	}
	return r(Progressing, "Route is still getting admitted")
}

func otelCollector(obj *unstructured.Unstructured) (Result, bool) {
	if str(obj, "spec", "mode") == "sidecar" {
		return r(Healthy, "Collector is running in sidecar mode")
	}
	ready, total, ok := strings.Cut(str(obj, "status", "scale", "statusReplicas"), "/")
	switch {
	case !ok:
		if has(obj, "status", "version") {
			return r(Healthy, "Collector is running")
		}
		return r(Progressing, "Waiting for status")
	case ready == total:
		return r(Healthy, "All replicas are ready")
	case ready == "0":
		return r(Degraded, "No replicas are ready")
	}
	return r(Progressing, "Replicas are starting up")
}

// olmSubscription: OLM subscriptions install an operator; a state of
// AtLatestKnown or UpgradePending (waiting for approval) is installed.
func olmSubscription(obj *unstructured.Unstructured) (Result, bool) {
	c := condsOf(obj)
	for _, typ := range []string{"CatalogSourcesUnhealthy", "InstallPlanFailed", "ResolutionFailed"} {
		if c.is(typ, "True") {
			return r(Degraded, c.msg(typ))
		}
	}
	if c.is("InstallPlanPending", "True") && c["InstallPlanPending"].Reason != "RequiresApproval" || c.is("BundleUnpacking", "True") {
		return r(Progressing, "Installing")
	}
	switch str(obj, "status", "state") {
	case "AtLatestKnown", "UpgradePending":
		return r(Healthy, "installed")
	}
	if c.is("InstallPlanMissing", "True") {
		return r(Healthy, "installed")
	}
	return r(Progressing, "status.state not yet known")
}

func openfaasFunction(obj *unstructured.Unstructured) (Result, bool) {
	c := condsOf(obj)
	if c.is("Ready", "True") && c.is("Healthy", "False") {
		return r(Suspended, "No replicas available")
	}
	return Generic(obj)
}

func spinApp(obj *unstructured.Unstructured) (Result, bool) {
	c := condsOf(obj)
	if p, ok := c["Progressing"]; ok {
		if p.Status == "False" && p.Reason == "ProgressDeadlineExceeded" {
			return r(Degraded, p.Message)
		}
		if p.Status == "True" && c.is("Available", "True") && generationBehind(obj) {
			return r(Progressing, p.Message)
		}
	}
	return Generic(obj)
}
