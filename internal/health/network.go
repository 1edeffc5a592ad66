package health

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// service is Healthy unless it is a LoadBalancer still waiting for an
// address from its cloud.
func service(obj *unstructured.Unstructured) (Result, error) {
	typ, _, _ := unstructured.NestedString(obj.Object, "spec", "type")
	if typ != "LoadBalancer" || hasLoadBalancerIngress(obj) {
		return Result{Status: Healthy}, nil
	}
	return Result{Status: Progressing}, nil
}

// ingress is Progressing until its controller publishes an address.
func ingress(obj *unstructured.Unstructured) (Result, error) {
	if hasLoadBalancerIngress(obj) {
		return Result{Status: Healthy}, nil
	}
	return Result{Status: Progressing}, nil
}

func hasLoadBalancerIngress(obj *unstructured.Unstructured) bool {
	ing, _, _ := unstructured.NestedSlice(obj.Object, "status", "loadBalancer", "ingress")
	return len(ing) > 0
}
