package health

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Rules for families of kinds that share one status convention across
// many kinds (registered in kinds_b.go's init).

// promoter: GitOps Promoter kinds report Ready, and per environment the
// phase of their gates and the dry commit SHAs being promoted.
func promoter(obj *unstructured.Unstructured) (Result, bool) {
	if obj.GetDeletionTimestamp() != nil {
		return r(Progressing, obj.GetKind()+" is being deleted")
	}
	if noStatus(obj) {
		return r(Progressing, "Initializing "+obj.GetKind())
	}
	c := condsOf(obj)
	ready, ok := c["Ready"]
	switch {
	case !ok:
		return r(Progressing, obj.GetKind()+" Ready condition is missing")
	case ready.ObservedGeneration > 0 && ready.ObservedGeneration < obj.GetGeneration():
		return r(Progressing, "Waiting for "+obj.GetKind()+" spec update to be observed")
	case ready.Status == "False":
		return r(Degraded, message(ready))
	case ready.Status != "True":
		return r(Progressing, message(ready))
	}
	envs, _, _ := unstructured.NestedSlice(obj.Object, "status", "environments")
	pending := false
	for _, e := range envs {
		env, _ := e.(map[string]any)
		switch env["phase"] {
		case "failure":
			return r(Degraded, fmt.Sprintf("failed for branch %v", env["branch"]))
		case "pending":
			pending = true
		}
	}
	if pending {
		return r(Progressing, "pending")
	}
	switch obj.GetKind() {
	case "ChangeTransferPolicy":
		active, proposed := str(obj, "status", "active", "dry", "sha"), str(obj, "status", "proposed", "dry", "sha")
		if active == "" || proposed == "" || active != proposed {
			return r(Progressing, "Promotion in progress")
		}
	case "PromotionStrategy":
		first := ""
		for i, e := range envs {
			env := &unstructured.Unstructured{Object: map[string]any{"e": e}}
			active, proposed := str(env, "e", "active", "dry", "sha"), str(env, "e", "proposed", "dry", "sha")
			if note := str(env, "e", "proposed", "note", "drySha"); note != "" {
				proposed = note
			}
			if i == 0 {
				first = proposed
			}
			if active == "" || proposed == "" || active != proposed || proposed != first {
				return r(Progressing, "Promotion in progress")
			}
		}
	}
	return r(Healthy, message(ready))
}

// rabbitmq: the messaging topology kinds report Ready; no status at all
// means the topology operator has not looked at them, which Argo CD
// calls Unknown. The cluster kind reports its own conditions.
func rabbitmq(obj *unstructured.Unstructured) (Result, bool) {
	c := condsOf(obj)
	if obj.GetKind() == "RabbitmqCluster" {
		switch {
		case noStatus(obj):
			return r(Progressing, "Waiting for RabbitMQ Operator")
		case c.is("ReconcileSuccess", "False"):
			return r(Degraded, c.msg("ReconcileSuccess"))
		case c.is("AllReplicasReady", "True") && c.is("ClusterAvailable", "True"):
			return r(Healthy, "RabbitMQ cluster ready")
		}
		return r(Progressing, "Waiting for RabbitMQ cluster readiness")
	}
	ready, ok := c["Ready"]
	switch {
	case !ok:
		return r(Unknown, "RabbitMQ "+strings.ToLower(obj.GetKind())+" status is unknown")
	case ready.Status == "True":
		return r(Healthy, message(ready))
	case ready.Status == "False":
		return r(Degraded, message(ready))
	}
	return r(Progressing, message(ready))
}

var elasticHealth = map[string]Status{"green": Healthy, "yellow": Progressing, "red": Degraded}

// elastic: ECK kinds report a health colour and a phase.
func elastic(obj *unstructured.Unstructured) (Result, bool) {
	h := strings.ToLower(str(obj, "status", "health"))
	phase := str(obj, "status", "phase")
	switch {
	case noStatus(obj):
		return r(Unknown, "status is unknown")
	case phase == "Invalid":
		return r(Degraded, "phase is Invalid")
	case phase != "" && phase != "Ready":
		return r(Progressing, "phase is "+phase)
	}
	if want := elasticNodes(obj); want > 0 {
		if got, ok := num(obj, "status", "availableNodes"); ok && got < want {
			return r(Progressing, fmt.Sprintf("The desired amount of availableNodes is %d but the current amount is %d", want, got))
		}
	}
	if st, ok := word(h, elasticHealth); ok {
		return r(st, "status is "+h)
	}
	if generationBehind(obj) || has(obj, "status", "expectedNodes") {
		return r(Progressing, "phase is progressing")
	}
	return r(Unknown, "status is unknown")
}

func elasticNodes(obj *unstructured.Unstructured) int64 {
	sets, _, _ := unstructured.NestedSlice(obj.Object, "spec", "nodeSets")
	var n int64
	for _, s := range sets {
		m, _ := s.(map[string]any)
		switch c := m["count"].(type) {
		case int64:
			n += c
		case float64:
			n += int64(c)
		}
	}
	return n
}

// numaplane: rollouts report their child's health and progressive
// upgrades.
func numaplane(obj *unstructured.Unstructured) (Result, bool) {
	if noStatus(obj) || generationBehind(obj) {
		return r(Progressing, "Not yet reconciled")
	}
	c := condsOf(obj)
	phase := str(obj, "status", "phase")
	switch {
	case phase == "Failed":
		return r(Degraded, str(obj, "status", "message"))
	case c.is("ProgressiveUpgradeSucceeded", "False"):
		return r(Degraded, "Progressive upgrade failed")
	case phase == "Pending" || str(obj, "status", "upgradeInProgress") != "":
		return r(Progressing, "Update in progress")
	}
	child, ok := c["ChildResourcesHealthy"]
	switch {
	case !ok:
		return r(Progressing, "Not yet reconciled")
	case child.Status == "True":
		return r(Healthy, "Healthy")
	case child.Reason == "Progressing":
		return r(Progressing, "Child Progressing")
	case child.Status == "False":
		return r(Degraded, child.Reason)
	}
	for typ, x := range c {
		if strings.HasSuffix(typ, "PausingOrPaused") && x.Status == "True" {
			return r(Healthy, "paused")
		}
	}
	return r(Progressing, "Child Progressing")
}

// confluent: Confluent for Kubernetes reports a phase per component.
func confluent(obj *unstructured.Unstructured) (Result, bool) {
	if obj.GetKind() == "Connector" {
		n, _ := num(obj, "status", "failedTasksCount")
		switch {
		case str(obj, "status", "state") == "ERROR" || str(obj, "status", "appState") == "Failed":
			return r(Degraded, str(obj, "status", "message"))
		case n > 0:
			return r(Degraded, "Connector has failed tasks")
		case str(obj, "status", "connectorState") == "RUNNING":
			return r(Healthy, "Connector running")
		}
		return r(Progressing, "Connector provisioning")
	}
	switch str(obj, "status", "phase") {
	case "RUNNING":
		return r(Healthy, obj.GetKind()+" running")
	case "FAILED", "ERROR":
		return r(Degraded, obj.GetKind()+" failed")
	}
	return r(Progressing, obj.GetKind()+" provisioning")
}

// gatewayRoute: a route is healthy when every parent accepted it and
// resolved its references.
func gatewayRoute(obj *unstructured.Unstructured) (Result, bool) {
	return perParent(obj, "parents", "parentRef")
}

// gatewayPolicy: policy attachments report per ancestor.
func gatewayPolicy(obj *unstructured.Unstructured) (Result, bool) {
	return perParent(obj, "ancestors", "ancestorRef")
}

func perParent(obj *unstructured.Unstructured, field, refField string) (Result, bool) {
	list, _, _ := unstructured.NestedSlice(obj.Object, "status", field)
	if len(list) == 0 {
		return r(Progressing, "Waiting for "+obj.GetKind()+" status")
	}
	gen := obj.GetGeneration()
	progressing := ""
	for _, item := range list {
		p, _ := item.(map[string]any)
		ref, _ := p[refField].(map[string]any)
		name := fmt.Sprint(orNil(ref["name"]))
		pc := conditions(&unstructured.Unstructured{Object: map[string]any{"status": p}})
		if len(pc) == 0 {
			progressing = "Waiting for " + name
		}
		for _, c := range pc {
			switch {
			case c.ObservedGeneration > 0 && c.ObservedGeneration < gen:
				progressing = "Waiting for " + name + " to update " + obj.GetKind() + " status"
			case c.Status == "False" && (c.Reason == "Pending" || isProgressReason(c.Reason)):
				progressing = name + ": " + message(c)
			case c.Status == "False":
				return r(Degraded, name+": "+message(c))
			case c.Status == "Unknown":
				progressing = name + ": " + message(c)
			}
		}
	}
	if progressing != "" {
		return r(Progressing, progressing)
	}
	return r(Healthy, obj.GetKind()+" is healthy")
}

func gateway(obj *unstructured.Unstructured) (Result, bool) {
	c := condsOf(obj)
	for _, typ := range []string{"Accepted", "ResolvedRefs"} {
		if c.is(typ, "False") {
			return r(Degraded, c.msg(typ))
		}
	}
	listeners, _, _ := unstructured.NestedSlice(obj.Object, "status", "listeners")
	for _, l := range listeners {
		m, _ := l.(map[string]any)
		for _, x := range conditions(&unstructured.Unstructured{Object: map[string]any{"status": m}}) {
			if x.Status == "False" && (x.Type == "Accepted" || x.Type == "ResolvedRefs" || x.Type == "Programmed") {
				return r(Degraded, "Listener: "+message(x))
			}
		}
	}
	if !c.is("Programmed", "True") {
		return r(Progressing, "Gateway is still being programmed")
	}
	return Generic(obj)
}
