package controller

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"converge.dev/converge/internal/dialect/flux"
)

// getFlux reads a Flux object into obj and names the spec fields
// converge does not act on. It reads it whole (unstructured) because the
// typed object has already dropped what converge does not know.
func getFlux(ctx context.Context, c client.Client, key types.NamespacedName, obj client.Object) (unsupported []string, err error) {
	gvk, err := apiutil.GVKForObject(obj, c.Scheme())
	if err != nil {
		return nil, err
	}
	raw := &unstructured.Unstructured{}
	raw.SetGroupVersionKind(gvk)
	if err := c.Get(ctx, key, raw); err != nil {
		return nil, err
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw.Object, obj); err != nil {
		return nil, fmt.Errorf("%s %s: %w", gvk.Kind, key, err)
	}
	return flux.Unsupported(raw), nil
}
