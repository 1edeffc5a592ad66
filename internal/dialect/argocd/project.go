package argocd

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/object"
)

// PermitsKinds checks objects against the project's resource lists, as
// Argo CD documents them: a cluster-scoped kind must be whitelisted; a
// namespaced kind must be whitelisted if there is a whitelist; and no kind
// may be blacklisted.
func PermitsKinds(proj *v1alpha1.AppProject, refs []object.Ref) error {
	s := proj.Spec
	for _, r := range refs {
		gk := r.Group + "/" + r.Kind
		if r.Namespace == "" {
			if !matchGK(s.ClusterResourceWhitelist, r) || matchGK(s.ClusterResourceBlacklist, r) {
				return fmt.Errorf("resource %s:%s is not permitted in project %s", gk, r.Name, proj.Name)
			}
			continue
		}
		if (len(s.NamespaceResourceWhitelist) > 0 && !matchGK(s.NamespaceResourceWhitelist, r)) || matchGK(s.NamespaceResourceBlacklist, r) {
			return fmt.Errorf("resource %s:%s is not permitted in project %s", gk, r.Name, proj.Name)
		}
	}
	return nil
}

func matchGK(list []metav1.GroupKind, r object.Ref) bool {
	for _, gk := range list {
		if glob(gk.Group, r.Group) && glob(gk.Kind, r.Kind) {
			return true
		}
	}
	return false
}
