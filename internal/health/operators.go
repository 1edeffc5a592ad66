package health

import (
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// statusKinds are operators' kinds whose controllers always write a
// status (group/Kind). An object of theirs with no status has not been
// reconciled yet, so it is Progressing, not "no health". The list is
// per kind, not per group, on purpose: many operator groups also hold
// configuration kinds that never get a status (ServiceMonitor,
// ReferenceGrant, TriggerAuthentication, AppProject...), and calling
// those Progressing would hold a sync wave forever.
var statusKinds = map[string]bool{
	"acid.zalan.do/postgresql": true, "addons.cluster.x-k8s.io/ClusterResourceSet": true,
	"apiextensions.k8s.io/CustomResourceDefinition": true, "apps.3scale.net/APIManager": true,
	"apps.kruise.io/AdvancedCronJob": true, "apps.kruise.io/BroadcastJob": true, "apps.kruise.io/CloneSet": true,
	"apps.kruise.io/DaemonSet": true, "apps.kruise.io/StatefulSet": true,
	"apps.openshift.io/DeploymentConfig": true, "argoproj.io/AnalysisRun": true,
	"argoproj.io/ApplicationSet": true, "argoproj.io/CronWorkflow": true, "argoproj.io/EventBus": true,
	"argoproj.io/Experiment": true, "argoproj.io/Rollout": true, "astra.netapp.io/AppVault": true,
	"astra.netapp.io/Application": true, "astra.netapp.io/Backup": true, "astra.netapp.io/ExecHook": true,
	"astra.netapp.io/ExecHooksRun": true, "astra.netapp.io/ResourceBackup": true,
	"astra.netapp.io/ResticVolumeBackup": true, "astra.netapp.io/Schedule": true,
	"astra.netapp.io/Snapshot": true, "batch/CronJob": true, "beat.k8s.elastic.co/Beat": true,
	"bitnami.com/SealedSecret": true, "camel.apache.org/Integration": true,
	"capabilities.3scale.net/ActiveDoc": true, "capabilities.3scale.net/Application": true,
	"capabilities.3scale.net/ApplicationAuth": true, "capabilities.3scale.net/Backend": true,
	"capabilities.3scale.net/CustomPolicyDefinition": true, "capabilities.3scale.net/DeveloperAccount": true,
	"capabilities.3scale.net/DeveloperUser": true, "capabilities.3scale.net/OpenAPI": true,
	"capabilities.3scale.net/Product": true, "capabilities.3scale.net/ProxyConfigPromote": true,
	"capabilities.3scale.net/Tenant": true, "cassandra.rook.io/Cluster": true,
	"cdi.kubevirt.io/DataVolume": true, "ceph.rook.io/CephCluster": true, "ceph.rook.io/CephObjectStore": true,
	"cert-manager.io/Certificate": true, "cert-manager.io/ClusterIssuer": true, "cert-manager.io/Issuer": true,
	"certmanager.k8s.io/Certificate": true, "certmanager.k8s.io/Issuer": true,
	"clickhouse-keeper.altinity.com/ClickHouseKeeperInstallation": true,
	"clickhouse.altinity.com/ClickHouseInstallation":              true, "cloudfront.aws.crossplane.io/Distribution": true,
	"cluster.x-k8s.io/Cluster": true, "cluster.x-k8s.io/Machine": true,
	"cluster.x-k8s.io/MachineDeployment": true, "cluster.x-k8s.io/MachineHealthCheck": true,
	"cluster.x-k8s.io/MachinePool": true, "controlplane.cluster.x-k8s.io/AWSManagedControlPlane": true,
	"coralogix.com/Alert": true, "coralogix.com/RecordingRuleGroupSet": true, "core.gardener.cloud/Shoot": true,
	"core.humio.com/HumioAction": true, "core.humio.com/HumioAlert": true, "core.humio.com/HumioCluster": true,
	"core.humio.com/HumioIngestToken": true, "core.humio.com/HumioParser": true,
	"core.humio.com/HumioRepository": true, "core.humio.com/HumioView": true, "core.spinkube.dev/SpinApp": true,
	"datadoghq.com/DatadogMetric": true, "db.atlasgo.io/AtlasMigration": true, "db.atlasgo.io/AtlasSchema": true,
	"elasticsearch.k8s.elastic.co/Elasticsearch": true, "external-secrets.io/ClusterExternalSecret": true,
	"external-secrets.io/ClusterSecretStore": true, "external-secrets.io/ExternalSecret": true,
	"external-secrets.io/PushSecret": true, "external-secrets.io/SecretStore": true, "flagger.app/Canary": true,
	"flink.apache.org/FlinkDeployment": true, "game.kruise.io/GameServer": true,
	"game.kruise.io/GameServerSet": true, "gateway.networking.k8s.io/BackendTLSPolicy": true,
	"gateway.networking.k8s.io/GRPCRoute": true, "gateway.networking.k8s.io/Gateway": true,
	"gateway.networking.k8s.io/GatewayClass": true, "gateway.networking.k8s.io/HTTPRoute": true,
	"gateway.solo.io/Gateway": true, "gateway.solo.io/MatchableHttpGateway": true,
	"gateway.solo.io/RouteOption": true, "gateway.solo.io/RouteTable": true,
	"gateway.solo.io/VirtualHostOption": true, "gateway.solo.io/VirtualService": true,
	"gloo.solo.io/Proxy": true, "gloo.solo.io/Settings": true, "gloo.solo.io/Upstream": true,
	"gloo.solo.io/UpstreamGroup": true, "grafana.integreatly.org/Grafana": true,
	"grafana.integreatly.org/GrafanaDashboard": true, "grafana.integreatly.org/GrafanaDatasource": true,
	"grafana.integreatly.org/GrafanaFolder": true, "helm.toolkit.fluxcd.io/HelmRelease": true,
	"iam.aws.crossplane.io/Policy": true, "iam.aws.crossplane.io/Role": true,
	"iam.aws.crossplane.io/RolePolicyAttachment": true, "iammanager.keikoproj.io/Iamrole": true,
	"image.toolkit.fluxcd.io/ImagePolicy": true, "image.toolkit.fluxcd.io/ImageRepository": true,
	"image.toolkit.fluxcd.io/ImageUpdateAutomation": true, "install.istio.io/IstioOperator": true,
	"jaegertracing.io/Jaeger": true, "k8s.keycloak.org/Keycloak": true, "k8s.mariadb.com/Backup": true,
	"k8s.mariadb.com/Database": true, "k8s.mariadb.com/Grant": true, "k8s.mariadb.com/MariaDB": true,
	"k8s.mariadb.com/SqlJob": true, "k8s.mariadb.com/User": true, "kafka.banzaicloud.io/KafkaCluster": true,
	"kafka.strimzi.io/Kafka": true, "kafka.strimzi.io/KafkaBridge": true, "kafka.strimzi.io/KafkaConnect": true,
	"kafka.strimzi.io/KafkaConnector": true, "kafka.strimzi.io/KafkaTopic": true,
	"kafka.strimzi.io/KafkaUser": true, "karpenter.k8s.aws/EC2NodeClass": true, "karpenter.sh/NodeClaim": true,
	"karpenter.sh/NodePool": true, "keda.sh/ScaledJob": true, "keda.sh/ScaledObject": true,
	"kiali.io/Kiali": true, "kubernetes-client.io/ExternalSecret": true, "kubevirt.io/VirtualMachine": true,
	"kubevirt.io/VirtualMachineInstance": true, "kustomize.toolkit.fluxcd.io/Kustomization": true,
	"kyverno.io/Policy": true, "lifecycle.keptn.sh/KeptnAppVersion": true,
	"lifecycle.keptn.sh/KeptnEvaluation": true, "lifecycle.keptn.sh/KeptnTask": true,
	"lifecycle.keptn.sh/KeptnWorkloadInstance": true, "lifecycle.keptn.sh/KeptnWorkloadVersion": true,
	"logstash.k8s.elastic.co/Logstash": true, "mariadb.mmontes.io/MariaDB": true,
	"metrics.keptn.sh/Analysis": true, "metrics.keptn.sh/KeptnMetric": true, "minio.min.io/Tenant": true,
	"monitoring.coreos.com/Prometheus": true, "networking.gke.io/ManagedCertificate": true,
	"nmstate.io/NodeNetworkConfigurationPolicy": true, "notification.toolkit.fluxcd.io/Receiver": true,
	"numaflow.numaproj.io/InterStepBufferService": true, "numaflow.numaproj.io/MonoVertex": true,
	"numaflow.numaproj.io/Pipeline": true, "numaflow.numaproj.io/Vertex": true,
	"numaplane.numaproj.io/ISBServiceRollout": true, "numaplane.numaproj.io/MonoVertexRollout": true,
	"numaplane.numaproj.io/NumaflowControllerRollout": true, "numaplane.numaproj.io/PipelineRollout": true,
	"objectbucket.io/ObjectBucketClaim": true, "ocs.openshift.io/StorageCluster": true,
	"onepassword.com/OnePasswordItem": true, "openfaas.com/Function": true,
	"opentelemetry.io/OpenTelemetryCollector": true, "operator.knative.dev/KnativeEventing": true,
	"operator.knative.dev/KnativeServing": true, "operator.openshift.io/IngressController": true,
	"operators.coreos.com/Subscription": true, "pkg.crossplane.io/Provider": true,
	"platform.confluent.io/Connect": true, "platform.confluent.io/Connector": true,
	"platform.confluent.io/ControlCenter": true, "platform.confluent.io/Kafka": true,
	"platform.confluent.io/KsqlDB": true, "platform.confluent.io/SchemaRegistry": true,
	"platform.confluent.io/Zookeeper": true, "policy.open-cluster-management.io/CertificatePolicy": true,
	"policy.open-cluster-management.io/ConfigurationPolicy": true,
	"policy.open-cluster-management.io/OperatorPolicy":      true, "policy.open-cluster-management.io/Policy": true,
	"policy/PodDisruptionBudget": true, "postgresql.cnpg.io/Cluster": true,
	"proclaim.dogmatiq.io/DNSSDServiceInstance": true, "projectcontour.io/ExtensionService": true,
	"projectcontour.io/HTTPProxy": true, "promoter.argoproj.io/ArgoCDCommitStatus": true,
	"promoter.argoproj.io/ChangeTransferPolicy": true, "promoter.argoproj.io/ClusterScmProvider": true,
	"promoter.argoproj.io/CommitStatus": true, "promoter.argoproj.io/GitCommitStatus": true,
	"promoter.argoproj.io/GitRepository": true, "promoter.argoproj.io/PromotionStrategy": true,
	"promoter.argoproj.io/PullRequest": true, "promoter.argoproj.io/ScmProvider": true,
	"promoter.argoproj.io/TimedCommitStatus": true, "promoter.argoproj.io/WebRequestCommitStatus": true,
	"psmdb.percona.com/PerconaServerMongoDB": true, "pulumi.com/Stack": true,
	"pxc.percona.com/PerconaXtraDBCluster": true, "rabbitmq.com/Binding": true, "rabbitmq.com/Exchange": true,
	"rabbitmq.com/Permission": true, "rabbitmq.com/Policy": true, "rabbitmq.com/Queue": true,
	"rabbitmq.com/RabbitmqCluster": true, "rabbitmq.com/Shovel": true, "rabbitmq.com/User": true,
	"rabbitmq.com/Vhost": true, "rds.aws.crossplane.io/DBCluster": true,
	"rds.aws.crossplane.io/DBInstance": true, "rollouts.kruise.io/Rollout": true,
	"route.openshift.io/Route": true, "route53.aws.crossplane.io/ResourceRecordSet": true,
	"s3.aws.crossplane.io/Bucket": true, "services.cloud.sap.com/ServiceBinding": true,
	"services.cloud.sap.com/ServiceInstance": true, "serving.knative.dev/Service": true,
	"serving.kserve.io/InferenceService": true, "snapshot.storage.k8s.io/VolumeSnapshot": true,
	"snapshot.storage.k8s.io/VolumeSnapshotContent": true, "solr.apache.org/SolrCloud": true,
	"source.toolkit.fluxcd.io/Bucket": true, "source.toolkit.fluxcd.io/GitRepository": true,
	"source.toolkit.fluxcd.io/HelmChart": true, "source.toolkit.fluxcd.io/HelmRepository": true,
	"source.toolkit.fluxcd.io/OCIRepository": true, "sparkoperator.k8s.io/SparkApplication": true,
	"spot.io/SpotDeployment": true, "stacks.crossplane.io/ClusterStackInstall": true,
	"tower.ansible.com/AnsibleJob": true, "trident.netapp.io/TridentBackendConfig": true,
	"trident.netapp.io/TridentOrchestrator": true, "work.karmada.io/ClusterResourceBinding": true,
	"work.karmada.io/ResourceBinding": true, "zookeeper.pravega.io/ZookeeperCluster": true,
}

// statusGroups are groups (or, in statusGroupSuffixes, group suffixes)
// where every kind is a reconciled resource with a status.
var statusGroups = map[string]bool{"grafana-org-operator.kubitus-project.gitlab.io": true, "microgateway.airlock.com": true, "operator.victoriametrics.com": true}

var statusGroupSuffixes = []string{"cnrm.cloud.google.com", "crossplane.io", "services.k8s.aws", "upbound.io"}

// awaitsStatus reports whether obj's kind always gets a status from its
// controller (see statusKinds).
func awaitsStatus(obj *unstructured.Unstructured) bool {
	gk := obj.GroupVersionKind().GroupKind()
	if statusKinds[gk.Group+"/"+gk.Kind] || statusGroups[gk.Group] {
		return true
	}
	for _, s := range statusGroupSuffixes {
		if strings.HasSuffix(gk.Group, "."+s) {
			return true
		}
	}
	return false
}
