// Package cluster is the only package that talks to a kube-apiserver:
// server-side apply and its dry run, reads, deletes, discovery, and the
// store of unit inventories. It returns results and logs nothing.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"converge.dev/converge/internal/object"
)

// FieldManager is converge's server-side apply field manager.
const FieldManager = "converge"

// Client talks to one cluster.
type Client struct {
	dyn    dynamic.Interface
	cs     kubernetes.Interface
	disc   discovery.CachedDiscoveryInterface
	mapper *restmapper.DeferredDiscoveryRESTMapper

	resetMu sync.Mutex
	// namespaces holds the namespaces this client made sure exist.
	namespaces sync.Map
}

// New returns a Client for cfg.
func New(cfg *rest.Config) (*Client, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster client: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster client: %w", err)
	}
	disc := memory.NewMemCacheClient(cs.Discovery())
	return &Client{dyn: dyn, cs: cs, disc: disc, mapper: restmapper.NewDeferredDiscoveryRESTMapper(disc)}, nil
}

// ServerVersion is the API server's version, as "v1.37.2".
func (c *Client) ServerVersion(ctx context.Context) (string, error) {
	v, err := c.cs.Discovery().ServerVersion()
	if err != nil {
		return "", fmt.Errorf("server version: %w", err)
	}
	return v.GitVersion, nil
}

// ErrUnknownKind means the API server does not serve the kind (yet).
var ErrUnknownKind = errors.New("kind is not served by the cluster")

// Served asks the API server, past any cache, whether it serves the
// kind at its version now: a CRD version taken out of service is gone
// here at once, while the cached mapping still has it.
func (c *Client) Served(ctx context.Context, gvk schema.GroupVersionKind) (bool, error) {
	list, err := c.cs.Discovery().ServerResourcesForGroupVersion(gvk.GroupVersion().String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discovery of %s: %w", gvk.GroupVersion(), err)
	}
	for _, r := range list.APIResources {
		if r.Kind == gvk.Kind && !strings.Contains(r.Name, "/") {
			return true, nil
		}
	}
	return false, nil
}

// mapping finds the resource for gvk. A miss refreshes discovery once, so
// that a CRD applied a moment ago is found.
func (c *Client) mapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err == nil {
		return m, nil
	}
	if !meta.IsNoMatchError(err) {
		return nil, err
	}
	c.resetMu.Lock()
	c.mapper.Reset()
	c.resetMu.Unlock()
	m, err = c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		return nil, fmt.Errorf("%s: %w", gvk, ErrUnknownKind)
	}
	return m, err
}

// IsNamespaced reports whether objects of the kind live in namespaces.
func (c *Client) IsNamespaced(gvk schema.GroupVersionKind) (bool, error) {
	m, err := c.mapping(gvk)
	if err != nil {
		return false, err
	}
	return m.Scope.Name() == meta.RESTScopeNameNamespace, nil
}

func (c *Client) resource(ref object.Ref) (dynamic.ResourceInterface, error) {
	m, err := c.mapping(ref.GVK())
	if err != nil {
		return nil, err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.dyn.Resource(m.Resource).Namespace(ref.Namespace), nil
	}
	return c.dyn.Resource(m.Resource), nil
}

// Get reads an object; it returns nil and no error when the object, or
// its kind, does not exist.
func (c *Client) Get(ctx context.Context, ref object.Ref) (*unstructured.Unstructured, error) {
	ri, err := c.resource(ref)
	if errors.Is(err, ErrUnknownKind) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s get: %w", ref, err)
	}
	obj, err := ri.Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s get: %w", ref, err)
	}
	return obj, nil
}

// List reads every object of a kind in a namespace ("" for all, or for a
// cluster-scoped kind). An unknown kind lists as empty.
func (c *Client) List(ctx context.Context, gvk schema.GroupVersionKind, namespace string) ([]unstructured.Unstructured, error) {
	ri, err := c.resource(object.Ref{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: namespace})
	if errors.Is(err, ErrUnknownKind) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s in %q: %w", gvk, namespace, err)
	}
	list, err := ri.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list %s in %q: %w", gvk, namespace, err)
	}
	return list.Items, nil
}

// ApplyOptions configure Apply.
type ApplyOptions struct {
	// Force takes ownership of fields another manager owns. If false, a
	// conflict is an error naming the fields and their managers.
	Force bool
	// DryRun asks the server to run admission and validation and return
	// the result without storing it (dryRun=All).
	DryRun bool
}

// Apply server-side applies obj with field manager converge and returns
// what the server stored (or would store, in a dry run).
func (c *Client) Apply(ctx context.Context, obj *unstructured.Unstructured, o ApplyOptions) (*unstructured.Unstructured, error) {
	ref := object.RefOf(obj)
	ri, err := c.resource(ref)
	if err != nil {
		return nil, fmt.Errorf("%s apply: %w", ref, err)
	}
	data, err := obj.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("%s apply: %w", ref, err)
	}
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: &o.Force}
	if o.DryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	out, err := ri.Patch(ctx, ref.Name, types.ApplyPatchType, data, opts)
	if err != nil {
		return nil, fmt.Errorf("%s apply: %w", ref, err)
	}
	return out, nil
}

// Delete deletes the object if its UID is still uid, so that an object
// recreated by someone else in the meantime is never deleted in its place.
// Dependents are collected in the background. A missing object is fine.
func (c *Client) Delete(ctx context.Context, ref object.Ref, uid types.UID) error {
	ri, err := c.resource(ref)
	if errors.Is(err, ErrUnknownKind) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s delete: %w", ref, err)
	}
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	if uid != "" {
		opts.Preconditions = &metav1.Preconditions{UID: &uid}
	}
	err = ri.Delete(ctx, ref.Name, opts)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("%s delete: %w", ref, err)
	}
	return nil
}
