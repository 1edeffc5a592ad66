// Package tree is a unit's resource tree: the objects it applied, as its
// status lists them, each workload with what it owns through
// ownerReferences (Deployment → ReplicaSet → Pod) and the health of
// each, for the UI and for `converge tree`.
package tree

import (
	"converge.dev/converge/internal/api/argocd/v1alpha1"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
)

// Node is one object of a unit's tree.
type Node struct {
	Group     string  `json:"group,omitempty"`
	Version   string  `json:"version,omitempty"`
	Kind      string  `json:"kind"`
	Namespace string  `json:"namespace,omitempty"`
	Name      string  `json:"name"`
	Sync      string  `json:"sync,omitempty"`
	Health    string  `json:"health,omitempty"`
	Message   string  `json:"message,omitempty"`
	Children  []*Node `json:"children,omitempty"`
}

// FromApplication is the top of an Application's tree: its resources,
// with the sync and health its status gives each.
func FromApplication(a *v1alpha1.Application) []*Node {
	nodes := []*Node{}
	for _, r := range a.Status.Resources {
		n := &Node{Group: r.Group, Version: r.Version, Kind: r.Kind, Namespace: r.Namespace, Name: r.Name, Sync: r.Status}
		if r.Health != nil {
			n.Health, n.Message = r.Health.Status, r.Health.Message
		}
		nodes = append(nodes, n)
	}
	return nodes
}

// FromInventory is the top of a Flux unit's tree: its inventory (a
// Kustomization's, or a HelmRelease's).
func FromInventory(inv *kustomizev1.ResourceInventory) []*Node {
	nodes := []*Node{}
	if inv == nil {
		return nodes
	}
	for _, e := range inv.Entries {
		if ns, name, group, kind, ok := e.Parts(); ok {
			nodes = append(nodes, &Node{Namespace: ns, Name: name, Group: group, Kind: kind, Version: e.Version})
		}
	}
	return nodes
}
