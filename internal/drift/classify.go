package drift

import (
	"fmt"
	"path"
	"strings"

	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/value"
)

// Managers names field managers by category, with glob patterns (path.Match
// syntax). They extend the built-in lists; see Classify.
type Managers struct {
	// Policy are policy engines that mutate objects through their own
	// client (Kyverno's mutate-existing rules). Built in: kyverno*,
	// gatekeeper*.
	Policy []string `json:"policy,omitempty"`
	// Cloud are cloud integrations. Built in: cloud-controller-manager,
	// aws-load-balancer-controller.
	Cloud []string `json:"cloud,omitempty"`
	// Human are clients people use. Built in: kubectl, kubectl-* and
	// kubectl.* (kubectl names itself after its executable), k9s.
	Human []string `json:"human,omitempty"`
}

var builtIn = Managers{
	Policy: []string{"kyverno*", "gatekeeper*"},
	Cloud:  []string{"cloud-controller-manager", "aws-load-balancer-controller"},
	Human:  []string{"kubectl", "kubectl-*", "kubectl.*", "k9s"},
}

// kubeControllerManager is the name every controller of
// kube-controller-manager writes under (MANAGEDFIELDS.md §0).
const kubeControllerManager = "kube-controller-manager"

// beforeFirstApply is the synthetic entry the server makes when an apply
// meets an object whose managedFields were wiped.
const beforeFirstApply = "before-first-apply"

// Classify puts a field held by entry e in a category and says on which
// evidence. Manager names are what clients call themselves, so the
// evidence always quotes the name it rests on.
func Classify(e Entry, p fieldpath.Path, m Managers) (Category, string) {
	switch {
	case e.Subresource == "status":
		return ControllerManaged, fmt.Sprintf("written by %q through the status subresource", e.Manager)
	case isStatus(p):
		return ControllerManaged, "a status field"
	case e.Subresource == "scale" && e.Manager == kubeControllerManager:
		return ControllerManaged, "a HorizontalPodAutoscaler (kube-controller-manager on /scale)"
	case e.Subresource == "scale":
		return ControllerManaged, fmt.Sprintf("an autoscaler (%q on /scale)", e.Manager)
	case matchAny(e.Manager, m.Policy, builtIn.Policy):
		return PolicyMutation, fmt.Sprintf("manager %q is a policy engine", e.Manager)
	case matchAny(e.Manager, m.Cloud, builtIn.Cloud):
		return CloudProvider, fmt.Sprintf("manager %q is a cloud integration", e.Manager)
	case e.Manager == beforeFirstApply:
		return Unattributed, "managedFields were reset, so the writer was not recorded"
	case matchAny(e.Manager, m.Human, builtIn.Human):
		return Unauthorized, fmt.Sprintf("manager %q is a human client", e.Manager)
	case e.Manager == kubeControllerManager:
		return ControllerManaged, "written by kube-controller-manager"
	}
	return ControllerManaged, fmt.Sprintf("manager %q is no known human client, so taken for a controller", e.Manager)
}

func isStatus(p fieldpath.Path) bool {
	return len(p) > 0 && p[0].FieldName != nil && *p[0].FieldName == "status"
}

func matchAny(name string, lists ...[]string) bool {
	for _, l := range lists {
		for _, pat := range l {
			if ok, _ := path.Match(pat, name); ok {
				return true
			}
		}
	}
	return false
}

// Segments spells p as the segments a policy path matches: field names,
// and for a list item its key values joined by ",", its value, or its
// index.
func Segments(p fieldpath.Path) []string {
	out := make([]string, 0, len(p))
	for _, pe := range p {
		switch {
		case pe.FieldName != nil:
			out = append(out, *pe.FieldName)
		case pe.Key != nil:
			var vs []string
			for _, f := range *pe.Key {
				vs = append(vs, scalar(f.Value))
			}
			out = append(out, strings.Join(vs, ","))
		case pe.Value != nil:
			out = append(out, scalar(*pe.Value))
		case pe.Index != nil:
			out = append(out, fmt.Sprint(*pe.Index))
		}
	}
	return out
}

func scalar(v value.Value) string {
	if v.IsString() {
		return v.AsString()
	}
	return value.ToString(v)
}
