package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"converge.dev/converge/internal/object"
)

// InventoryNamespace holds the inventories of units that have no object
// of their own to keep them in (CLI units).
const InventoryNamespace = "converge-system"

// Inventory is the exact set of objects a unit applied, with their API
// versions: the only thing pruning ever deletes from.
type Inventory struct {
	Unit     string       `json:"unit"`
	Revision string       `json:"revision"`
	Objects  []object.Ref `json:"objects"`
	// PruneHeldSince is when a prune of the unit was first held by its
	// prune budget; nil when none is held. An approval must be later.
	PruneHeldSince *metav1.Time `json:"pruneHeldSince,omitempty"`
	// Stored says the inventory was read from, or written to, the
	// cluster: ReplaceInventory then updates it rather than creates it.
	Stored bool `json:"-"`
}

// same reports whether inv and other say the same, objects compared in
// order.
func (inv Inventory) same(other Inventory) bool {
	return inv.Unit == other.Unit && inv.Revision == other.Revision && sameRefs(inv.Objects, other.Objects) &&
		inv.PruneHeldSince.Equal(other.PruneHeldSince)
}

func inventoryName(unit string) string {
	if dnsLabel.MatchString(unit) && len(unit) <= 50 {
		return "inventory-" + unit
	}
	h := sha256.Sum256([]byte(unit))
	return "inventory-" + hex.EncodeToString(h[:])[:16]
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// LoadInventory returns the unit's stored inventory, empty if it has none.
func (c *Client) LoadInventory(ctx context.Context, unit string) (Inventory, error) {
	cm, err := c.cs.CoreV1().ConfigMaps(InventoryNamespace).Get(ctx, inventoryName(unit), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Inventory{Unit: unit}, nil
	}
	if err != nil {
		return Inventory{}, fmt.Errorf("unit %s: load inventory: %w", unit, err)
	}
	var inv Inventory
	if err := json.Unmarshal([]byte(cm.Data["inventory"]), &inv); err != nil {
		return Inventory{}, fmt.Errorf("unit %s: inventory ConfigMap %s/%s: %w", unit, InventoryNamespace, cm.Name, err)
	}
	if inv.Unit != unit {
		return Inventory{}, fmt.Errorf("unit %s: inventory ConfigMap %s/%s belongs to unit %q", unit, InventoryNamespace, cm.Name, inv.Unit)
	}
	inv.Stored = true
	return inv, nil
}

// SaveInventory stores inv, writing only if it differs from what is
// stored, so a steady-state resync writes nothing.
func (c *Client) SaveInventory(ctx context.Context, inv Inventory) error {
	prev, err := c.LoadInventory(ctx, inv.Unit)
	if err != nil {
		return err
	}
	_, err = c.ReplaceInventory(ctx, prev, inv)
	return err
}

// ReplaceInventory stores inv where prev is what is stored now, as this
// process last loaded or saved it: it reads nothing, and writes nothing
// if they say the same. It returns inv as stored.
func (c *Client) ReplaceInventory(ctx context.Context, prev, inv Inventory) (Inventory, error) {
	sort.Slice(inv.Objects, func(i, j int) bool { return inv.Objects[i].String() < inv.Objects[j].String() })
	if prev.same(inv) {
		inv.Stored = prev.Stored
		return inv, nil
	}
	data, err := json.Marshal(inv)
	if err != nil {
		return inv, err
	}
	if err := c.ensureNamespace(ctx, InventoryNamespace); err != nil {
		return inv, fmt.Errorf("unit %s: save inventory: %w", inv.Unit, err)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: inventoryName(inv.Unit), Namespace: InventoryNamespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "converge"}},
		Data: map[string]string{"inventory": string(data)},
	}
	cms := c.cs.CoreV1().ConfigMaps(InventoryNamespace)
	update := func() error {
		_, err := cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	}
	create := func() error {
		_, err := cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: FieldManager})
		return err
	}
	// Update what is known to exist, create what is not; the other way
	// round if that guess was wrong (another replica, a deletion).
	if prev.Stored {
		err = update()
		if apierrors.IsNotFound(err) {
			err = create()
		}
	} else {
		err = create()
		if apierrors.IsAlreadyExists(err) {
			err = update()
		}
	}
	if apierrors.IsNotFound(err) {
		// The namespace went away since it was made: make it again.
		c.namespaces.Delete(InventoryNamespace)
		if err = c.ensureNamespace(ctx, InventoryNamespace); err == nil {
			err = create()
		}
	}
	if err != nil {
		return inv, fmt.Errorf("unit %s: save inventory: %w", inv.Unit, err)
	}
	inv.Stored = true
	return inv, nil
}

// ensureNamespace makes the namespace if it does not exist, once per
// client: an inventory write that finds it gone makes it again.
func (c *Client) ensureNamespace(ctx context.Context, name string) error {
	if _, ok := c.namespaces.Load(name); ok {
		return nil
	}
	_, err := c.cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = c.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
	}
	if err == nil {
		c.namespaces.Store(name, true)
	}
	return err
}

func sameRefs(a, b []object.Ref) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// DeleteInventory forgets the unit's inventory; a missing one is fine.
func (c *Client) DeleteInventory(ctx context.Context, unit string) error {
	err := c.cs.CoreV1().ConfigMaps(InventoryNamespace).Delete(ctx, inventoryName(unit), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("unit %s: delete inventory: %w", unit, err)
	}
	return nil
}
