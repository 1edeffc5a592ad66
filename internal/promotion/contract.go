package promotion

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Rollback modes, seed §15: "Every production promotion must define
// whether rollback is automatic, manual, or impossible."
const (
	RollbackAutomatic  = "automatic"
	RollbackManual     = "manual"
	RollbackImpossible = "impossible"
)

// The six dimensions of seed §15 a revert must be compatible with.
const (
	DimImage    = "image"
	DimConfig   = "config"
	DimManifest = "manifest"
	DimDatabase = "database"
	DimCloud    = "cloud"
	DimPolicy   = "policy"
)

// Dimensions are the six, in the order they are reported.
var Dimensions = []string{DimImage, DimConfig, DimManifest, DimDatabase, DimCloud, DimPolicy}

// Check is one dimension of a rollback contract.
type Check struct {
	Dimension string `json:"dimension"`
	// Mode is automatic, manual or impossible; empty when it could not
	// be checked (Message says why).
	Mode    string `json:"mode"`
	Message string `json:"message"`
	// Refuse fails the rollback gate whatever the mode: the image to go
	// back to is gone.
	Refuse bool `json:"refuse,omitempty"`
}

// Contract is what going back would take: the worst mode of its checks.
type Contract struct {
	Mode   string  `json:"mode"`
	Checks []Check `json:"checks"`
	// RollForward is the plan when rollback is impossible, from the
	// rollback-plan evidence.
	RollForward string `json:"rollForward,omitempty"`
}

// Judge makes the contract of checks: its mode is the worst of theirs
// (an unchecked dimension counts as manual until it is checked).
func Judge(checks []Check, rollForward string) Contract {
	rank := map[string]int{RollbackAutomatic: 0, "": 1, RollbackManual: 1, RollbackImpossible: 2}
	worst := RollbackAutomatic
	for _, c := range checks {
		if rank[c.Mode] > rank[worst] {
			worst = c.Mode
		}
	}
	if worst == "" {
		worst = RollbackManual
	}
	return Contract{Mode: worst, Checks: checks, RollForward: rollForward}
}

// Gate is the rollback gate's result: failed when the previous image is
// gone, or when rollback is impossible and no roll-forward plan is
// recorded; pending while a dimension cannot be checked; passed
// otherwise, saying the mode and why.
func (c Contract) Gate() (Phase, string) {
	var refused, unknown, why []string
	for _, k := range c.Checks {
		switch {
		case k.Refuse:
			refused = append(refused, k.Dimension+": "+k.Message)
		case k.Mode == "":
			unknown = append(unknown, k.Dimension+": "+k.Message)
		case k.Mode != RollbackAutomatic:
			why = append(why, k.Dimension+": "+k.Message)
		}
	}
	switch {
	case len(refused) > 0:
		return Failed, strings.Join(refused, "; ")
	case c.Mode == RollbackImpossible && c.RollForward == "":
		return Failed, "rollback is impossible (" + strings.Join(why, "; ") + ") and no roll-forward plan is recorded (converge evidence add --type rollback-plan --roll-forward ...)"
	case len(unknown) > 0:
		return Pending, "cannot check " + strings.Join(unknown, "; ")
	case c.Mode == RollbackImpossible:
		return Passed, "rollback is impossible (" + strings.Join(why, "; ") + "); roll forward: " + c.RollForward
	case c.Mode == RollbackManual:
		return Passed, "rollback is manual: " + strings.Join(why, "; ")
	}
	return Passed, "rollback is automatic: revert the promotion commit"
}

// DatabaseCheck reads the migration evidence: none (or no migration
// recorded) is automatic, reversible is manual (someone runs the down
// migration), irreversible is impossible.
func DatabaseCheck(migrations []string) Check {
	c := Check{Dimension: DimDatabase, Mode: RollbackAutomatic, Message: "no migration recorded"}
	for _, m := range migrations {
		switch m {
		case "irreversible":
			return Check{Dimension: DimDatabase, Mode: RollbackImpossible, Message: "the migration is irreversible"}
		case "reversible":
			c = Check{Dimension: DimDatabase, Mode: RollbackManual, Message: "the migration must be reversed before the old image runs"}
		case "none":
			if c.Mode == RollbackAutomatic {
				c.Message = "the migration evidence says none"
			}
		}
	}
	return c
}

// ConfigRef is a ConfigMap or Secret a workload reads.
type ConfigRef struct {
	Kind, Namespace, Name string
	// Optional refs (optional: true) do not block a start.
	Optional bool
}

func (r ConfigRef) String() string { return r.Kind + " " + r.Namespace + "/" + r.Name }

// ConfigRefs lists the ConfigMaps and Secrets the pod templates in objs
// read (env valueFrom, envFrom, volumes, projected volumes), each once,
// sorted. namespace is given to objects that name none.
func ConfigRefs(objs []*unstructured.Unstructured, namespace string) []ConfigRef {
	seen := map[ConfigRef]bool{}
	for _, o := range objs {
		ns := o.GetNamespace()
		if ns == "" {
			ns = namespace
		}
		spec := PodSpec(o)
		if spec == nil {
			continue
		}
		add := func(kind string, m map[string]any, nameKey string) {
			name, _ := m[nameKey].(string)
			if name == "" {
				return
			}
			opt, _ := m["optional"].(bool)
			seen[ConfigRef{Kind: kind, Namespace: ns, Name: name, Optional: opt}] = true
		}
		for _, field := range []string{"initContainers", "containers"} {
			cs, _ := spec[field].([]any)
			for _, c := range cs {
				cm, _ := c.(map[string]any)
				envs, _ := cm["env"].([]any)
				for _, e := range envs {
					em, _ := e.(map[string]any)
					vf, _ := em["valueFrom"].(map[string]any)
					if r, ok := vf["configMapKeyRef"].(map[string]any); ok {
						add("ConfigMap", r, "name")
					}
					if r, ok := vf["secretKeyRef"].(map[string]any); ok {
						add("Secret", r, "name")
					}
				}
				froms, _ := cm["envFrom"].([]any)
				for _, f := range froms {
					fm, _ := f.(map[string]any)
					if r, ok := fm["configMapRef"].(map[string]any); ok {
						add("ConfigMap", r, "name")
					}
					if r, ok := fm["secretRef"].(map[string]any); ok {
						add("Secret", r, "name")
					}
				}
			}
		}
		vols, _ := spec["volumes"].([]any)
		for _, v := range vols {
			vm, _ := v.(map[string]any)
			if r, ok := vm["configMap"].(map[string]any); ok {
				add("ConfigMap", r, "name")
			}
			if r, ok := vm["secret"].(map[string]any); ok {
				add("Secret", r, "secretName")
			}
			proj, _ := vm["projected"].(map[string]any)
			srcs, _ := proj["sources"].([]any)
			for _, s := range srcs {
				sm, _ := s.(map[string]any)
				if r, ok := sm["configMap"].(map[string]any); ok {
					add("ConfigMap", r, "name")
				}
				if r, ok := sm["secret"].(map[string]any); ok {
					add("Secret", r, "name")
				}
			}
		}
	}
	out := make([]ConfigRef, 0, len(seen))
	for r := range seen {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// PodSpec is the pod spec of a workload, job, cron job or pod, or nil:
// where the images and the ConfigMaps and Secrets a render runs are.
func PodSpec(o *unstructured.Unstructured) map[string]any {
	for _, path := range [][]string{{"spec", "template", "spec"}, {"spec", "jobTemplate", "spec", "template", "spec"}} {
		if m, ok, _ := unstructured.NestedMap(o.Object, path...); ok {
			return m
		}
	}
	if o.GetKind() == "Pod" {
		m, _, _ := unstructured.NestedMap(o.Object, "spec")
		return m
	}
	return nil
}

// CloudTouched lists what a change does to infrastructure outside the
// cluster that a revert may not restore: load-balancer settings on
// Services (type, class, service.beta.kubernetes.io/ and
// *load-balancer* annotations), ingress classes, and storage classes
// (PersistentVolumeClaims and StatefulSet claim templates). before and
// after are a target's render on the base and at the head.
func CloudTouched(before, after []*unstructured.Unstructured) []string {
	type key struct{ kind, ns, name string }
	was := map[key]*unstructured.Unstructured{}
	for _, o := range before {
		was[key{o.GetKind(), o.GetNamespace(), o.GetName()}] = o
	}
	var out []string
	for _, o := range after {
		prev := was[key{o.GetKind(), o.GetNamespace(), o.GetName()}]
		for _, f := range cloudFields(o) {
			if prev == nil || f.value != valueOf(cloudFields(prev), f.name) {
				out = append(out, fmt.Sprintf("%s %s %s", o.GetKind(), o.GetName(), f.name))
			}
		}
		if prev != nil {
			for _, f := range cloudFields(prev) {
				if !hasField(cloudFields(o), f.name) {
					out = append(out, fmt.Sprintf("%s %s %s", o.GetKind(), o.GetName(), f.name))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

type cloudField struct{ name, value string }

func valueOf(fs []cloudField, name string) string {
	for _, f := range fs {
		if f.name == name {
			return f.value
		}
	}
	return "\x00absent"
}

func hasField(fs []cloudField, name string) bool { return valueOf(fs, name) != "\x00absent" }

// cloudFields are an object's fields that reach outside the cluster.
func cloudFields(o *unstructured.Unstructured) []cloudField {
	var out []cloudField
	str := func(path ...string) {
		if v, ok, _ := unstructured.NestedString(o.Object, path...); ok {
			out = append(out, cloudField{strings.Join(path, "."), v})
		}
	}
	switch o.GetKind() {
	case "Service":
		if t, _, _ := unstructured.NestedString(o.Object, "spec", "type"); t == "LoadBalancer" {
			out = append(out, cloudField{"spec.type", t})
		}
		str("spec", "loadBalancerClass")
		for k, v := range o.GetAnnotations() {
			if strings.HasPrefix(k, "service.beta.kubernetes.io/") || strings.Contains(k, "load-balancer") {
				out = append(out, cloudField{"annotation " + k, v})
			}
		}
	case "Ingress":
		str("spec", "ingressClassName")
		if v, ok := o.GetAnnotations()["kubernetes.io/ingress.class"]; ok {
			out = append(out, cloudField{"annotation kubernetes.io/ingress.class", v})
		}
	case "PersistentVolumeClaim":
		str("spec", "storageClassName")
	case "StatefulSet":
		tmpls, _, _ := unstructured.NestedSlice(o.Object, "spec", "volumeClaimTemplates")
		for _, t := range tmpls {
			tm, _ := t.(map[string]any)
			name, _, _ := unstructured.NestedString(tm, "metadata", "name")
			if sc, ok, _ := unstructured.NestedString(tm, "spec", "storageClassName"); ok {
				out = append(out, cloudField{"volumeClaimTemplates " + name + " storageClassName", sc})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}
