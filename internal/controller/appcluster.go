package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/dialect/argocd"
	"converge.dev/converge/internal/engine"
)

// appCluster is where an Application deploys: the engine that plans,
// applies and keeps inventories there, and a client for the one thing
// the engine does not do (create the destination namespace).
type appCluster struct {
	argocd.Cluster
	engine *engine.Engine
	client client.Client
}

// remoteClusters keeps one engine per registered cluster Secret version:
// a rotated credential gets a new one.
type remoteClusters struct {
	mu   sync.Mutex
	byID map[string]appCluster
}

// clusterFor resolves the Application's destination against the cluster
// Secrets in its namespace (Argo CD reads them from its own namespace,
// where its Applications live). Inventories live in the target cluster,
// as for a Flux Kustomization's kubeConfig.
func (r *ApplicationReconciler) clusterFor(ctx context.Context, app *v1alpha1.Application) (appCluster, error) {
	var list corev1.SecretList
	if err := r.Client.List(ctx, &list, client.InNamespace(app.Namespace), client.MatchingLabels{argocd.SecretTypeLabel: "cluster"}); err != nil {
		return appCluster{}, fmt.Errorf("spec.destination: list cluster secrets in %s: %w", app.Namespace, err)
	}
	var clusters []argocd.Cluster
	versions := map[string]string{}
	var unreadable []error
	for i := range list.Items {
		c, err := argocd.ClusterOf(&list.Items[i])
		if err != nil {
			unreadable = append(unreadable, err)
			continue
		}
		clusters = append(clusters, c)
		versions[c.Secret] = string(list.Items[i].UID) + "/" + list.Items[i].ResourceVersion
	}
	dest, err := argocd.ResolveDestination(app.Spec.Destination, clusters)
	if err != nil {
		if len(unreadable) > 0 {
			// The cluster asked for may be the one whose Secret is broken.
			err = fmt.Errorf("%w; %w", err, errors.Join(unreadable...))
		}
		return appCluster{}, err
	}
	if dest.InCluster() {
		return appCluster{Cluster: dest, engine: r.Engine, client: r.Client}, nil
	}
	id := app.Namespace + "/" + dest.Secret + "@" + versions[dest.Secret]
	r.remotes.mu.Lock()
	defer r.remotes.mu.Unlock()
	if c, ok := r.remotes.byID[id]; ok {
		return c, nil
	}
	cc, err := cluster.New(dest.Config)
	if err != nil {
		return appCluster{}, fmt.Errorf("cluster %s (%s): %w", dest.Name, dest.Server, err)
	}
	cl, err := client.New(dest.Config, client.Options{Scheme: r.Client.Scheme()})
	if err != nil {
		return appCluster{}, fmt.Errorf("cluster %s (%s): %w", dest.Name, dest.Server, err)
	}
	c := appCluster{Cluster: dest, engine: r.Engine.ForCluster(cc), client: cl}
	if r.remotes.byID == nil {
		r.remotes.byID = map[string]appCluster{}
	}
	r.remotes.byID[id] = c
	return c, nil
}
