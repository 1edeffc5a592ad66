package health

import (
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func pvc(obj *unstructured.Unstructured) (Result, error) {
	phase, _, _ := unstructured.NestedString(obj.Object, "status", "phase")
	switch corev1.PersistentVolumeClaimPhase(phase) {
	case corev1.ClaimBound:
		return Result{Status: Healthy}, nil
	case corev1.ClaimPending:
		return Result{Status: Progressing}, nil
	case corev1.ClaimLost:
		return Result{Status: Degraded}, nil
	}
	return Result{Status: Unknown}, nil
}

func namespace(obj *unstructured.Unstructured) (Result, error) {
	phase, _, _ := unstructured.NestedString(obj.Object, "status", "phase")
	if phase == string(corev1.NamespaceTerminating) {
		return Result{Progressing, "Namespace is terminating"}, nil
	}
	return Result{Status: Healthy}, nil
}

// condition is the common shape of status conditions across kinds.
type condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	// ObservedGeneration is the generation the condition was set for,
	// where the controller records it.
	ObservedGeneration int64 `json:"observedGeneration"`
}

// conditions reads status.conditions, or nil if there are none.
func conditions(obj *unstructured.Unstructured) []condition {
	raw, ok, _ := unstructured.NestedFieldNoCopy(obj.Object, "status", "conditions")
	list, _ := raw.([]any)
	if !ok || list == nil {
		return nil
	}
	// Read field by field: one odd value (a number where a string is
	// expected) must not hide every condition.
	out := make([]condition, 0, len(list))
	for _, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		c := condition{Type: fmt.Sprint(orNil(m["type"])), Status: conditionStatus(m["status"]),
			Reason: fmt.Sprint(orNil(m["reason"])), Message: fmt.Sprint(orNil(m["message"]))}
		switch g := m["observedGeneration"].(type) {
		case int64:
			c.ObservedGeneration = g
		case float64:
			c.ObservedGeneration = int64(g)
		}
		out = append(out, c)
	}
	return out
}

// conditionStatus spells a condition's status as the API does, whatever
// the manifest wrote: an unquoted YAML true is the bool true.
func conditionStatus(v any) string {
	s := fmt.Sprint(orNil(v))
	for _, w := range []string{"True", "False", "Unknown"} {
		if strings.EqualFold(s, w) {
			return w
		}
	}
	return s
}

func orNil(v any) any {
	if v == nil {
		return ""
	}
	return v
}

func apiService(obj *unstructured.Unstructured) (Result, error) {
	for _, c := range conditions(obj) {
		if c.Type == "Available" {
			if c.Status == "True" {
				return Result{Healthy, c.Message}, nil
			}
			return Result{Progressing, fmt.Sprintf("%s: %s", c.Reason, c.Message)}, nil
		}
	}
	return Result{Status: Progressing}, nil
}

// hpa reads v2 status conditions, or v1's conditions annotation. Any
// failure to read the scale target or a metric is Degraded; an autoscaler
// able to scale its target is Healthy; otherwise it is still waiting.
func hpa(obj *unstructured.Unstructured) (Result, error) {
	conds := conditions(obj)
	if raw := obj.GetAnnotations()["autoscaling.alpha.kubernetes.io/conditions"]; raw != "" && conds == nil {
		if err := json.Unmarshal([]byte(raw), &conds); err != nil {
			return Result{}, fmt.Errorf("annotation autoscaling.alpha.kubernetes.io/conditions: %w", err)
		}
	}
	for _, c := range conds {
		if strings.HasPrefix(c.Reason, "Failed") || c.Reason == "InvalidSelector" || c.Reason == "InvalidMetricSourceType" {
			return Result{Degraded, c.Message}, nil
		}
	}
	for _, c := range conds {
		if c.Type == "AbleToScale" && c.Status == "True" {
			return Result{Healthy, c.Message}, nil
		}
	}
	return Result{Progressing, "Waiting to Autoscale"}, nil
}

// crd follows the API server's own conditions: names accepted, a
// structural schema, and Established.
func crd(obj *unstructured.Unstructured) (Result, error) {
	if obj.GetDeletionTimestamp() != nil {
		return Result{Progressing, "CRD is terminating"}, nil
	}
	conds := conditions(obj)
	if len(conds) == 0 {
		return Result{Progressing, "Status conditions not found"}, nil
	}
	var established *condition
	for i, c := range conds {
		switch {
		case c.Type == "Terminating" && c.Status == "True":
			return Result{Progressing, "CRD is terminating: " + c.Message}, nil
		case c.Type == "NamesAccepted" && c.Status == "False":
			return Result{Degraded, "CRD names have not been accepted: " + c.Message}, nil
		case c.Type == "NonStructuralSchema" && c.Status == "True":
			return Result{Degraded, "Schema violations found: " + c.Message}, nil
		case c.Type == "Established":
			established = &conds[i]
		}
	}
	if established != nil && established.Status == "False" {
		if established.Reason == "Installing" {
			return Result{Progressing, "CRD is being installed"}, nil
		}
		return Result{Degraded, "CRD is not established"}, nil
	}
	return Result{Healthy, "CRD is healthy"}, nil
}
