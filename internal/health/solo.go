package health

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// soloState reads Solo.io's (Gloo, Gloo Gateway) validation state. Their
// resources report, per reporting namespace in status.statuses or once in
// status, a state: Pending (0), Accepted (1), Rejected (2) or Warning (3),
// with a reason when not accepted. The worst state wins.
func soloState(obj *unstructured.Unstructured) (Result, bool) {
	st, ok := obj.Object["status"].(map[string]any)
	if !ok || len(st) == 0 {
		return Result{Progressing, "No validation report yet"}, true
	}
	var reports []map[string]any
	if byNS, ok := st["statuses"].(map[string]any); ok {
		keys := make([]string, 0, len(byNS))
		for k := range byNS {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if r, ok := byNS[k].(map[string]any); ok {
				reports = append(reports, r)
			}
		}
	} else {
		reports = append(reports, st)
	}
	worst, msg := Healthy, ""
	for _, r := range reports {
		s, m := soloStatus(r["state"]), fmt.Sprint(r["reason"])
		if r["reason"] == nil {
			m = ""
		}
		if Worst(worst, s) != worst {
			worst, msg = s, m
		}
	}
	switch {
	case worst == Healthy:
		msg = "Accepted by every reporter"
	case worst == Suspended && msg == "":
		msg = "Not validated yet"
	}
	return Result{worst, msg}, true
}

// soloStatus maps one state. Pending means not validated yet; Argo CD
// reports it as Suspended, and converge agrees so that dashboards match.
func soloStatus(v any) Status {
	switch strings.ToLower(fmt.Sprint(v)) {
	case "accepted", "1":
		return Healthy
	case "rejected", "2", "warning", "3":
		return Degraded
	case "pending", "0":
		return Suspended
	}
	return Unknown
}

// byGroupSuffix holds rules for families of custom resources that share a
// status convention across many kinds.
var byGroupSuffix = map[string]func(*unstructured.Unstructured) (Result, bool){
	"solo.io": soloState,
}

func family(obj *unstructured.Unstructured) (Result, bool) {
	group := obj.GroupVersionKind().Group
	for suffix, rule := range byGroupSuffix {
		if group == suffix || strings.HasSuffix(group, "."+suffix) {
			return rule(obj)
		}
	}
	return Result{}, false
}
