package health

import (
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// operatorGroups are API groups (or suffixes of them) of well-known
// operators: each of their kinds is reconciled by a controller that
// writes status. An object of theirs with no status has not been
// reconciled yet, so it is Progressing, not "no health". For other
// groups an absent status may be all there ever is (plain configuration
// objects), and no health is invented.
var operatorGroups = []string{
	"cnrm.cloud.google.com", "crossplane.io", "upbound.io", "services.k8s.aws", "acid.zalan.do", "cluster.x-k8s.io",
	"3scale.net", "kruise.io", "openshift.io", "argoproj.io", "netapp.io", "k8s.elastic.co", "bitnami.com",
	"camel.apache.org", "rook.io", "kubevirt.io", "cert-manager.io", "certmanager.k8s.io", "altinity.com",
	"coralogix.com", "gardener.cloud", "humio.com", "spinkube.dev", "datadoghq.com", "atlasgo.io",
	"external-secrets.io", "flagger.app", "flink.apache.org", "gateway.networking.k8s.io", "solo.io",
	"kubitus-project.gitlab.io", "grafana.integreatly.org", "toolkit.fluxcd.io", "keikoproj.io", "istio.io",
	"jaegertracing.io", "keycloak.org", "mariadb.com", "mmontes.io", "banzaicloud.io", "kafka.strimzi.io",
	"karpenter.sh", "karpenter.k8s.aws", "keda.sh", "kiali.io", "kubernetes-client.io", "kyverno.io", "keptn.sh",
	"min.io", "monitoring.coreos.com", "networking.gke.io", "nmstate.io", "numaproj.io", "objectbucket.io",
	"onepassword.com", "openfaas.com", "opentelemetry.io", "knative.dev", "victoriametrics.com",
	"operators.coreos.com", "confluent.io", "open-cluster-management.io", "cnpg.io", "dogmatiq.io",
	"projectcontour.io", "percona.com", "pulumi.com", "rabbitmq.com", "cloud.sap.com", "kserve.io",
	"snapshot.storage.k8s.io", "solr.apache.org", "sparkoperator.k8s.io", "spot.io", "ansible.com",
	"karmada.io", "pravega.io", "airlock.com",
}

// awaitsStatus reports whether obj's group belongs to a well-known
// operator (see operatorGroups).
func awaitsStatus(obj *unstructured.Unstructured) bool {
	g := obj.GroupVersionKind().Group
	for _, suffix := range operatorGroups {
		if g == suffix || strings.HasSuffix(g, "."+suffix) {
			return true
		}
	}
	return false
}
