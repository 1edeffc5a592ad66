package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"k8s.io/client-go/kubernetes"
)

// HomeEnv overrides the per-user folder that holds named clusters.
const HomeEnv = "CONVERGE_HOME"

// Errors a caller of Store branches on.
var (
	ErrExists      = errors.New("cluster already exists")
	ErrNotFound    = errors.New("cluster does not exist")
	ErrInvalidName = errors.New("invalid cluster name")
)

// Store keeps named clusters, each in Dir/clusters/NAME.
type Store struct {
	// Dir is the per-user folder. DefaultStore picks $CONVERGE_HOME, else
	// $XDG_STATE_HOME/converge, else ~/.local/state/converge.
	Dir string
}

// DefaultStore is the store the CLI uses.
func DefaultStore() (Store, error) {
	if d := os.Getenv(HomeEnv); d != "" {
		return Store{Dir: d}, nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return Store{Dir: filepath.Join(d, "converge")}, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return Store{}, fmt.Errorf("find the per-user folder: %w (set %s)", err, HomeEnv)
	}
	return Store{Dir: filepath.Join(home, ".local", "state", "converge")}, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

func (s Store) dir(name string) string { return filepath.Join(s.Dir, "clusters", name) }

// Create starts a detached cluster named name. o.Name, o.Dir and o.Detach
// are set by the store. A name is taken while its folder exists, whether
// the cluster runs or not.
func (s Store) Create(ctx context.Context, name string, o Options) (*Cluster, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("%w %q: use lower-case letters, digits and '-', at most 63", ErrInvalidName, name)
	}
	if err := os.MkdirAll(filepath.Join(s.Dir, "clusters"), 0o700); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	// Mkdir is the reservation: two concurrent creates cannot both win.
	if err := os.Mkdir(s.dir(name), 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("cluster %s: %w (delete it first: converge cluster delete %s)", name, ErrExists, name)
		}
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	o.Name, o.Dir, o.Detach = name, s.dir(name), true
	c, err := Start(ctx, o)
	if err != nil {
		os.RemoveAll(s.dir(name))
		return nil, err
	}
	return c, nil
}

// Get loads a named cluster's record.
func (s Store) Get(name string) (*Cluster, error) {
	c, err := Load(s.dir(name))
	if errors.Is(err, fs.ErrNotExist) {
		if _, statErr := os.Stat(s.dir(name)); statErr == nil {
			// Created but never recorded: a create is running or died early.
			return &Cluster{Name: name, Dir: s.dir(name)}, nil
		}
		return nil, fmt.Errorf("cluster %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	return c, nil
}

// Delete stops a named cluster and removes its folder.
func (s Store) Delete(ctx context.Context, name string) error {
	c, err := s.Get(name)
	if err != nil {
		return err
	}
	if err := c.Stop(ctx); err != nil {
		return err
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		return fmt.Errorf("cluster %s: remove %s: %w", name, c.Dir, err)
	}
	return nil
}

// Status is one row of List.
type Status struct {
	*Cluster
	// State is running (the API answers), unreachable (the process lives
	// but the API does not answer) or stopped.
	State string
	Age   time.Duration
}

// List returns every named cluster, sorted by name.
func (s Store) List(ctx context.Context) ([]Status, error) {
	entries, err := os.ReadDir(filepath.Join(s.Dir, "clusters"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	var out []Status
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		c, err := s.Get(e.Name())
		if err != nil {
			continue
		}
		st := Status{Cluster: c, State: c.probe(ctx)}
		if !c.Created.IsZero() {
			st.Age = time.Since(c.Created)
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (c *Cluster) probe(ctx context.Context) string {
	if !c.Alive() {
		return "stopped"
	}
	cfg, err := c.RESTConfig()
	if err != nil {
		return "unreachable"
	}
	cfg.Timeout = 2 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "unreachable"
	}
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil || string(body) != "ok" {
		return "unreachable"
	}
	return "running"
}
