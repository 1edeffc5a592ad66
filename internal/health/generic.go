package health

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Generic assesses a custom resource from the conventions most controllers
// follow: status.observedGeneration and the Ready, Available, Stalled,
// Reconciling and Progressing conditions. It returns false when the object
// says nothing it can read, so that no health is invented for it.
func Generic(obj *unstructured.Unstructured) (Result, bool) {
	if obj.GetDeletionTimestamp() != nil {
		return Result{Progressing, "Pending deletion"}, true
	}
	if _, ok := obj.Object["status"]; !ok {
		return Result{}, false
	}
	if og, ok, _ := unstructured.NestedInt64(obj.Object, "status", "observedGeneration"); ok && og < obj.GetGeneration() {
		return Result{Progressing, fmt.Sprintf("Waiting for the controller to observe generation %d (observed %d)", obj.GetGeneration(), og)}, true
	}
	byType := map[string]condition{}
	for _, c := range conditions(obj) {
		byType[c.Type] = c
	}
	is := func(typ, status string) bool { c, ok := byType[typ]; return ok && c.Status == status }
	progressing := is("Reconciling", "True") || is("Progressing", "True")
	if c := byType["Stalled"]; c.Status == "True" {
		return Result{Degraded, message(c)}, true
	}
	for _, typ := range []string{"Ready", "Available"} {
		c, ok := byType[typ]
		if !ok {
			continue
		}
		switch {
		case c.Status == "True":
			return Result{Healthy, c.Message}, true
		case c.Status == "Unknown" || progressing || strings.Contains(c.Reason, "Progress"):
			return Result{Progressing, message(c)}, true
		default:
			return Result{Degraded, message(c)}, true
		}
	}
	if progressing {
		c := byType["Reconciling"]
		if c.Status != "True" {
			c = byType["Progressing"]
		}
		return Result{Progressing, message(c)}, true
	}
	return phase(obj)
}

// phaseWords maps the words controllers commonly put in status.phase,
// status.state, status.status or status.health to a status. Words whose
// meaning differs between kinds ("Running", "Deployed") are left out:
// guessing there would be worse than saying nothing.
var phaseWords = map[string]Status{
	"failed": Degraded, "failure": Degraded, "error": Degraded, "errored": Degraded,
	"configerror": Degraded, "degraded": Degraded, "invalid": Degraded, "crashloopbackoff": Degraded, "red": Degraded,
	"pending": Progressing, "creating": Progressing, "provisioning": Progressing, "initializing": Progressing,
	"deploying": Progressing, "updating": Progressing, "upgrading": Progressing, "restarting": Progressing,
	"scalingup": Progressing, "scalingdown": Progressing, "inprogress": Progressing, "progressing": Progressing,
	"reconciling": Progressing, "starting": Progressing, "waiting": Progressing, "upgradepending": Progressing,
	"yellow": Progressing,
	"ready":  Healthy, "available": Healthy, "succeeded": Healthy, "successful": Healthy, "completed": Healthy,
	"complete": Healthy, "bound": Healthy, "active": Healthy, "healthy": Healthy, "green": Healthy,
	"paused": Suspended, "suspended": Suspended,
}

// phase reads a status word when an object has no usable conditions.
func phase(obj *unstructured.Unstructured) (Result, bool) {
	for _, field := range []string{"phase", "state", "status", "health"} {
		word, ok, _ := unstructured.NestedString(obj.Object, "status", field)
		if !ok || word == "" {
			continue
		}
		key := strings.ToLower(strings.NewReplacer(" ", "", "_", "", "-", "").Replace(word))
		if st, known := phaseWords[key]; known {
			msg, _, _ := unstructured.NestedString(obj.Object, "status", "message")
			return Result{st, msg}, true
		}
	}
	return Result{}, false
}

// message prefers the condition's message and falls back to its reason.
func message(c condition) string {
	if c.Message != "" {
		return c.Message
	}
	return c.Reason
}
