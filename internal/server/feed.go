package server

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/units"
)

// newObject is an empty object of kind, nil for a kind the UI does not show.
func newObject(kind string) client.Object {
	if k := units.TypeOf(kind); k != nil {
		return k.New()
	}
	return nil
}

// Feed keeps x current from c's informers for every unit kind: the
// controller's own, so the UI costs no watch of its own.
func Feed(ctx context.Context, c cache.Cache, x *units.Index) error {
	_, err := units.Feed(ctx, c, x, units.FeedOptions{})
	if err != nil {
		return fmt.Errorf("ui: %w", err)
	}
	return nil
}
