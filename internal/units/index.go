package units

import (
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/labels"
)

// Index holds the summaries of every unit, kept current by informer
// events (Put, Delete), and tells watchers of each change. Queries read
// it alone: a request never becomes API-server calls.
type Index struct {
	mu       sync.RWMutex
	rows     map[Ref]Summary
	watchers map[chan Event]struct{}
}

// Event is one change: Deleted false is an add or update.
type Event struct {
	Deleted bool    `json:"deleted,omitempty"`
	Unit    Summary `json:"unit"`
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{rows: map[Ref]Summary{}, watchers: map[chan Event]struct{}{}}
}

// Put adds or replaces s. An equal summary (a status write that changed
// nothing a list shows) tells no watcher.
func (x *Index) Put(s Summary) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.rows[s.Ref]; ok && sameRow(old, s) {
		x.rows[s.Ref] = s
		return
	}
	x.rows[s.Ref] = s
	x.notify(Event{Unit: s})
}

// Delete removes r.
func (x *Index) Delete(r Ref) {
	x.mu.Lock()
	defer x.mu.Unlock()
	s, ok := x.rows[r]
	if !ok {
		return
	}
	delete(x.rows, r)
	x.notify(Event{Deleted: true, Unit: s})
}

// Get returns r's summary.
func (x *Index) Get(r Ref) (Summary, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	s, ok := x.rows[r]
	return s, ok
}

// Len is how many units the index holds.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.rows)
}

// Watch returns a channel of changes until stop is called. A watcher
// that falls behind by more than its buffer is dropped: its channel is
// closed, and it should list again.
func (x *Index) Watch() (events <-chan Event, stop func()) {
	ch := make(chan Event, 256)
	x.mu.Lock()
	x.watchers[ch] = struct{}{}
	x.mu.Unlock()
	return ch, func() {
		x.mu.Lock()
		defer x.mu.Unlock()
		if _, ok := x.watchers[ch]; ok {
			delete(x.watchers, ch)
			close(ch)
		}
	}
}

func (x *Index) notify(e Event) {
	for ch := range x.watchers {
		select {
		case ch <- e:
		default:
			delete(x.watchers, ch)
			close(ch)
		}
	}
}

func sameRow(a, b Summary) bool {
	if len(a.Labels) != len(b.Labels) {
		return false
	}
	for k, v := range a.Labels {
		if b.Labels[k] != v {
			return false
		}
	}
	type row struct {
		Ref
		Dialect, Project, Cluster, Source, Revision, Sync, Health, Message string
	}
	key := func(s Summary) row {
		return row{s.Ref, s.Dialect, s.Project, s.Cluster, s.Source, s.Revision, s.Sync, s.Health, s.Message}
	}
	return key(a) == key(b) && a.Created.Equal(b.Created)
}

// Query selects units. Empty fields select all; Sync and Health may
// list several values with commas.
type Query struct {
	Dialect, Kind, Project, Namespace, Cluster, Sync, Health string
	// Labels selects by the unit's labels; nil selects all.
	Labels labels.Selector
	// Search matches a substring of the name, ignoring case.
	Search string
	// Limit is the page size: 0 is 100, at most 1000.
	Limit int
	// After is the cursor a previous page returned in Next.
	After string
	// Allow, if set, hides the units it refuses (RBAC): they are not
	// counted either.
	Allow func(Summary) bool
}

// Page is one page of a query's units, sorted by namespace, name and
// kind, with counts over every unit the query matched.
type Page struct {
	Items []Summary `json:"items"`
	// Next is the cursor of the next page; "" on the last.
	Next   string `json:"next,omitempty"`
	Total  int    `json:"total"`
	Counts Counts `json:"counts"`
}

// Counts are the matching units by sync and by health status.
type Counts struct {
	Sync   map[string]int `json:"sync"`
	Health map[string]int `json:"health"`
}

// MaxLimit is the largest page.
const MaxLimit = 1000

// List answers q.
func (x *Index) List(q Query) (Page, error) {
	limit := q.Limit
	switch {
	case limit == 0:
		limit = 100
	case limit < 0 || limit > MaxLimit:
		return Page{}, fmt.Errorf("limit %d: between 1 and %d", q.Limit, MaxLimit)
	}
	var after *Ref
	if q.After != "" {
		r, err := decodeCursor(q.After)
		if err != nil {
			return Page{}, err
		}
		after = &r
	}
	syncs, healths := set(q.Sync), set(q.Health)
	search := strings.ToLower(q.Search)
	page := Page{Counts: Counts{Sync: map[string]int{}, Health: map[string]int{}}}
	var matched []Summary
	x.mu.RLock()
	for _, s := range x.rows {
		if !matches(q, s, syncs, healths, search) {
			continue
		}
		page.Total++
		page.Counts.Sync[s.Sync]++
		page.Counts.Health[s.Health]++
		if after == nil || less(*after, s.Ref) {
			matched = append(matched, s)
		}
	}
	x.mu.RUnlock()
	sort.Slice(matched, func(i, j int) bool { return less(matched[i].Ref, matched[j].Ref) })
	if len(matched) > limit {
		matched = matched[:limit]
		page.Next = encodeCursor(matched[limit-1].Ref)
	}
	page.Items = matched
	if page.Items == nil {
		page.Items = []Summary{}
	}
	return page, nil
}

func matches(q Query, s Summary, syncs, healths map[string]bool, search string) bool {
	for _, f := range []struct{ want, have string }{{q.Dialect, s.Dialect}, {q.Kind, s.Kind}, {q.Project, s.Project},
		{q.Namespace, s.Namespace}, {q.Cluster, s.Cluster}} {
		if f.want != "" && f.want != f.have {
			return false
		}
	}
	if (syncs != nil && !syncs[s.Sync]) || (healths != nil && !healths[s.Health]) {
		return false
	}
	if search != "" && !strings.Contains(strings.ToLower(s.Name), search) {
		return false
	}
	if q.Labels != nil && !q.Labels.Matches(labels.Set(s.Labels)) {
		return false
	}
	return q.Allow == nil || q.Allow(s)
}

func set(list string) map[string]bool {
	if list == "" {
		return nil
	}
	out := map[string]bool{}
	for _, v := range strings.Split(list, ",") {
		out[strings.TrimSpace(v)] = true
	}
	return out
}

func less(a, b Ref) bool {
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	if a.Name != b.Name {
		return a.Name < b.Name
	}
	return a.Kind < b.Kind
}

func encodeCursor(r Ref) string {
	return base64.RawURLEncoding.EncodeToString([]byte(r.Namespace + "\x00" + r.Name + "\x00" + r.Kind))
}

func decodeCursor(c string) (Ref, error) {
	data, err := base64.RawURLEncoding.DecodeString(c)
	parts := strings.Split(string(data), "\x00")
	if err != nil || len(parts) != 3 {
		return Ref{}, fmt.Errorf("cursor %q: not one this server gave", c)
	}
	return Ref{Namespace: parts[0], Name: parts[1], Kind: parts[2]}, nil
}
