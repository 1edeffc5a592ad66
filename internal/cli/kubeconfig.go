package cli

import (
	"fmt"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/controller"
)

// restConfig loads a client configuration the way kubectl does: an
// explicit file, else $KUBECONFIG, else ~/.kube/config, else in-cluster.
func restConfig(kubeconfig, context string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}

// dynamicClient is a dynamic client for the kubeconfig and context.
func dynamicClient(kubeconfig, context string) (dynamic.Interface, error) {
	cfg, err := restConfig(kubeconfig, context)
	if err != nil {
		return nil, err
	}
	return dynamic.NewForConfig(cfg)
}

// kubeClient is a client of the kubeconfig and context's cluster that
// knows converge's kinds and both dialects'.
func kubeClient(kubeconfig, context string) (client.Client, error) {
	cfg, err := restConfig(kubeconfig, context)
	if err != nil {
		return nil, err
	}
	scheme, err := controller.Scheme()
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}
