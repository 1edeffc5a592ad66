package health

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Generic assesses a custom resource from the conventions most controllers
// follow: status.observedGeneration, conditions whose True means trouble
// (Failed, Stalled, ...), conditions whose True means done (Ready,
// Available, Synced, ...), Paused/Suspended, and a status word. It
// returns false when the object says nothing it can read, so that no
// health is invented for it; a kind run by a well-known operator with no
// status yet is Progressing (see awaitsStatus).
func Generic(obj *unstructured.Unstructured) (Result, bool) {
	st, hasStatus := obj.Object["status"].(map[string]any)
	if !hasStatus || len(st) == 0 {
		if awaitsStatus(obj) {
			return Result{Progressing, "Waiting for the controller to report status"}, true
		}
		return Result{}, false
	}
	// A negative observedGeneration (Flux's -1) means "never observed";
	// the conditions still say why.
	if og, ok := num(obj, "status", "observedGeneration"); ok && og >= 0 && og < obj.GetGeneration() {
		return Result{Progressing, fmt.Sprintf("Waiting for the controller to observe generation %d (observed %d)", obj.GetGeneration(), og)}, true
	}
	if r, ok := byConditions(conditions(obj), obj.GetGeneration()); ok {
		return r, true
	}
	if r, ok := phase(obj); ok {
		return r, true
	}
	if b, ok := st["healthy"].(bool); ok {
		if b {
			return Result{Healthy, "healthy"}, true
		}
		return Result{Degraded, "not healthy"}, true
	}
	if awaitsStatus(obj) {
		return Result{Progressing, "Waiting for the controller to report readiness"}, true
	}
	return Result{}, false
}

// troubleTypes are condition types whose True status means the object
// failed. ".Terminal" (AWS controllers) is matched as a suffix.
var troubleTypes = map[string]bool{
	"Stalled": true, "Failed": true, "Failure": true, "Error": true, "Errored": true, "Invalid": true,
	"NotReady": true, "SpecError": true, "SubmissionError": true, "ErrorOccurred": true, "HasErrors": true,
	"Orphan": true, "InstallPlanFailed": true, "ResolutionFailed": true, "Degraded": true, "ReconcileError": true,
	"Fallback": true,
}

// doneTypes are condition types whose True status means the object
// reached its desired state, in the order they are trusted.
var doneTypes = []string{"Ready", "Available", "Succeeded", "Complete", "Completed", "Synced", "Valid", "Accepted",
	"Healthy", "Deployed", "Established", "Programmed", "Compliant", "Successful", "RemoteSynced", "Discoverable",
	"ResourcesApplied", "Installed", "Reconciled", "DashboardSynchronized", "FolderSynchronized", "Promoted"}

// progressWords in a condition's reason say a False condition is on its
// way rather than failed.
var progressWords = []string{"progress", "creating", "pending", "waiting", "reconciling", "updating", "provisioning",
	"initializ", "scaling", "starting", "restoring", "notcomplete", "unpacking", "deploying", "installing", "rolling",
	"cloning", "reconcil"}

func isErrorReason(reason string) bool {
	r := strings.ToLower(reason)
	return strings.Contains(r, "fail") || strings.Contains(r, "error")
}

func isProgressReason(reason string) bool {
	r := strings.ToLower(reason)
	if strings.Contains(r, "fail") || strings.Contains(r, "error") {
		return false
	}
	for _, w := range progressWords {
		if strings.Contains(r, w) {
			return true
		}
	}
	return false
}

// byConditions reads the condition conventions. Trouble first, then
// suspension, then the first done-type condition present; a Reconciling
// or Progressing condition alone is in progress.
func byConditions(conds []condition, generation int64) (Result, bool) {
	if len(conds) == 0 {
		return Result{}, false
	}
	byType := map[string]condition{}
	for _, c := range conds {
		if _, dup := byType[c.Type]; !dup || c.Status == "True" {
			byType[c.Type] = c
		}
	}
	is := func(typ, status string) bool { c, ok := byType[typ]; return ok && c.Status == status }
	for _, c := range conds {
		if c.Status == "True" && (troubleTypes[c.Type] || strings.HasSuffix(c.Type, ".Terminal")) {
			return Result{Degraded, message(c)}, true
		}
	}
	for _, typ := range []string{"Paused", "Suspended"} {
		if c := byType[typ]; c.Status == "True" {
			return Result{Suspended, message(c)}, true
		}
	}
	// Flux retries a failed reconcile with Reconciling=True and reason
	// ProgressingWithRetry: that is a failure being retried, not progress.
	progressing := (is("Reconciling", "True") && byType["Reconciling"].Reason != "ProgressingWithRetry") || is("Progressing", "True")
	for _, typ := range doneTypes {
		c, ok := byType[typ]
		if !ok {
			continue
		}
		switch {
		case c.ObservedGeneration > 0 && c.ObservedGeneration < generation:
			return Result{Progressing, fmt.Sprintf("Waiting for %s to be updated for generation %d", typ, generation)}, true
		case c.Status == "True":
			return Result{Healthy, c.Message}, true
		case c.Status == "Unknown" && isErrorReason(c.Reason):
			return Result{Degraded, message(c)}, true
		case c.Status == "Unknown" || c.Status == "" || progressing || isProgressReason(c.Reason):
			return Result{Progressing, message(c)}, true
		default:
			return Result{Degraded, message(c)}, true
		}
	}
	if progressing || is("Running", "True") {
		c := byType["Reconciling"]
		if c.Status != "True" {
			c = byType["Progressing"]
		}
		if c.Status != "True" {
			c = byType["Running"]
		}
		return Result{Progressing, message(c)}, true
	}
	return Result{}, false
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
	"yellow":        Progressing,
	"notreconciled": Progressing, "compliant": Healthy, "noncompliant": Degraded, "valid": Healthy,
	"ready": Healthy, "available": Healthy, "succeeded": Healthy, "successful": Healthy, "completed": Healthy,
	"complete": Healthy, "bound": Healthy, "active": Healthy, "healthy": Healthy, "green": Healthy,
	"paused": Suspended, "suspended": Suspended,
}

// phase reads a status word when an object has no usable conditions.
func phase(obj *unstructured.Unstructured) (Result, bool) {
	for _, field := range []string{"phase", "state", "status", "health", "currentStatus", "compliant"} {
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
