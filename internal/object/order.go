package object

// kindOrder is the order Helm installs kinds in, which Argo CD also uses
// within a wave: what others depend on comes first. Kinds not listed (most
// custom resources) come after all of these.
var kindOrder = map[string]int{}

func init() {
	for i, k := range []string{
		"Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
		"PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap",
		"StorageClass", "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition",
		"ClusterRole", "ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList",
		"Role", "RoleList", "RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod",
		"ReplicationController", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler",
		"StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
		"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
	} {
		kindOrder[k] = i
	}
}

// KindOrder ranks a kind for applying; lower goes first.
func KindOrder(kind string) int {
	if n, ok := kindOrder[kind]; ok {
		return n
	}
	return len(kindOrder)
}

// IsFoundation reports whether objects of the kind must exist before
// anything else can be applied: Namespaces, and CRDs that define kinds.
func IsFoundation(r Ref) bool {
	return (r.Group == "" && r.Kind == "Namespace") ||
		(r.Group == "apiextensions.k8s.io" && r.Kind == "CustomResourceDefinition")
}
