package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/object"
)

// predictionTTL bounds how long a dry-run result is reused. A server's
// answer for the same object against the same live resourceVersion only
// changes when its defaulting or admission changes (a CRD schema, a
// mutating webhook); an hour bounds how long such a change can go
// unseen. A sync reuses one only where it changes nothing: new desired
// bytes or a new live version miss the cache, and the server validates
// them before anything is applied.
const predictionTTL = time.Hour

// predictionCache keeps server-side dry-run results of comparisons, so a
// steady-state resync sends no dry runs at all.
type predictionCache struct {
	entries *generations[string, prediction]
}

// predictionGeneration bounds one generation of predictionCache.
const predictionGeneration = 50000

type prediction struct {
	obj packed
	at  time.Time
	// conflicts and hpa are what the dry run without force found when
	// other managers held fields (see Engine.dryRun): kept so that a
	// steady state with drift sends no dry run either.
	conflicts []string
	hpa       bool
}

// predictionKey identifies a dry run: the desired object's bytes, the
// live object's identity and version, and whether conflicts are forced.
// A missing live object is never cached: creation predictions are cheap
// to redo and rare in a steady state.
func predictionKey(desired, live *unstructured.Unstructured, force bool) string {
	if live == nil {
		return ""
	}
	data, err := desired.MarshalJSON()
	if err != nil {
		return ""
	}
	h := sha256.Sum256(data)
	f := "0"
	if force {
		f = "1"
	}
	return hex.EncodeToString(h[:]) + "/" + string(live.GetUID()) + "/" + live.GetResourceVersion() + "/" + f
}

func (c *predictionCache) get(key string) *unstructured.Unstructured {
	if key == "" {
		return nil
	}
	p, ok := c.entries.get(key)
	if !ok || time.Since(p.at) > predictionTTL {
		return nil
	}
	return p.obj.unpack()
}

// getExplained returns a prediction made for an object with conflicts,
// the conflicts, and whether an HPA scales the object.
func (c *predictionCache) getExplained(key string) (obj *unstructured.Unstructured, conflicts []string, hpa, ok bool) {
	if key == "" {
		return nil, nil, false, false
	}
	p, found := c.entries.get(key)
	if !found || time.Since(p.at) > predictionTTL {
		return nil, nil, false, false
	}
	if obj = p.obj.unpack(); obj == nil {
		return nil, nil, false, false
	}
	return obj, p.conflicts, p.hpa, true
}

// putExplained keeps the prediction of an object with conflicts, with
// them.
func (c *predictionCache) putExplained(key string, obj *unstructured.Unstructured, conflicts []string, hpa bool) {
	if p, ok := pack(obj); ok && key != "" {
		c.entries.put(key, prediction{obj: p, at: time.Now(), conflicts: conflicts, hpa: hpa})
	}
}

func (c *predictionCache) put(key string, obj *unstructured.Unstructured) {
	if p, ok := pack(obj); ok {
		c.putPacked(key, p)
	}
}

func (c *predictionCache) putPacked(key string, p packed) {
	if key != "" {
		c.entries.put(key, prediction{obj: p, at: time.Now()})
	}
}

// inventoryTTL bounds how long an inventory this process loaded or saved
// is trusted without reading it again. Within one controller (the
// leader) this process is the only writer of its units' inventories.
const inventoryTTL = 10 * time.Minute

// inventoryMemo remembers inventories per unit.
type inventoryMemo struct {
	mu sync.Mutex
	m  map[string]memoInventory
}

type memoInventory struct {
	inv cluster.Inventory
	at  time.Time
}

func (m *inventoryMemo) get(unit string) (cluster.Inventory, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[unit]
	if !ok || time.Since(v.at) > inventoryTTL {
		return cluster.Inventory{}, false
	}
	return v.inv, true
}

func (m *inventoryMemo) put(inv cluster.Inventory) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]memoInventory{}
	}
	m.m[inv.Unit] = memoInventory{inv, time.Now()}
}

func (m *inventoryMemo) forget(unit string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, unit)
}

func (e *Engine) loadInventory(ctx context.Context, unit string) (cluster.Inventory, error) {
	if inv, ok := e.inventories.get(unit); ok {
		return inv, nil
	}
	inv, err := e.inventoryClient().LoadInventory(ctx, unit)
	if err != nil {
		return inv, err
	}
	e.inventories.put(inv)
	return inv, nil
}

func (e *Engine) saveInventory(ctx context.Context, inv cluster.Inventory) error {
	prev, known := e.inventories.get(inv.Unit)
	if known && prev.Revision == inv.Revision && sameRefs(prev.Objects, inv.Objects) && prev.PruneHeldSince.Equal(inv.PruneHeldSince) {
		return nil // what is stored already says this
	}
	e.inventories.forget(inv.Unit)
	var err error
	if known {
		// This process loaded or saved it last: no need to read it back.
		inv, err = e.inventoryClient().ReplaceInventory(ctx, prev, inv)
	} else {
		err = e.inventoryClient().SaveInventory(ctx, inv)
		inv.Stored = err == nil
	}
	if err != nil {
		return err
	}
	e.inventories.put(inv)
	return nil
}

// sameRefs compares two inventories' objects in any order.
func sameRefs(a, b []object.Ref) bool {
	if len(a) != len(b) {
		return false
	}
	seen := make(map[object.Key]int, len(a))
	for _, r := range a {
		seen[r.Key()]++
	}
	for _, r := range b {
		if seen[r.Key()] == 0 {
			return false
		}
		seen[r.Key()]--
	}
	return true
}
