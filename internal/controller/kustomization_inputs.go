package controller

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
)

// substituteFrom reads postBuild variables from ConfigMaps and Secrets,
// in order. A missing one fails the reconcile unless optional; errors
// name the object, never a value.
func (r *KustomizationReconciler) substituteFrom(ctx context.Context, ks *kustomizev1.Kustomization) (map[string]string, error) {
	if ks.Spec.PostBuild == nil {
		return nil, nil
	}
	vars := map[string]string{}
	for _, ref := range ks.Spec.PostBuild.SubstituteFrom {
		key := types.NamespacedName{Namespace: ks.Namespace, Name: ref.Name}
		data, err := refData(ctx, r.Client, ref.Kind, key)
		if apierrors.IsNotFound(err) && ref.Optional {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("postBuild.substituteFrom: %w", err)
		}
		for k, v := range data {
			vars[k] = string(v)
		}
	}
	return vars, nil
}

// refData reads the data of the ConfigMap or Secret kind names, for
// valuesFrom and substituteFrom (a ConfigMap's data only, as Flux reads
// it).
// A missing object is an error that apierrors.IsNotFound recognises, so
// that callers can honour optional references. Errors name the object,
// never a value.
func refData(ctx context.Context, c client.Reader, kind string, key types.NamespacedName) (map[string][]byte, error) {
	out := map[string][]byte{}
	switch kind {
	case "ConfigMap":
		cm := &corev1.ConfigMap{}
		if err := c.Get(ctx, key, cm); err != nil {
			return nil, fmt.Errorf("ConfigMap %s: %w", key, err)
		}
		for k, v := range cm.Data {
			out[k] = []byte(v)
		}
	case "Secret":
		sec := &corev1.Secret{}
		if err := c.Get(ctx, key, sec); err != nil {
			return nil, fmt.Errorf("Secret %s: %w", key, err)
		}
		out = sec.Data
	default:
		return nil, fmt.Errorf("kind %q (want ConfigMap or Secret)", kind)
	}
	return out, nil
}

// ageKeys reads the decryption Secret: every key ending in .agekey holds
// age identities. Errors name the Secret, never its content.
func (r *KustomizationReconciler) ageKeys(ctx context.Context, ks *kustomizev1.Kustomization) ([]string, error) {
	d := ks.Spec.Decryption
	if d == nil || d.SecretRef == nil {
		return nil, nil
	}
	sec := &corev1.Secret{}
	key := types.NamespacedName{Namespace: ks.Namespace, Name: d.SecretRef.Name}
	if err := r.Client.Get(ctx, key, sec); err != nil {
		return nil, fmt.Errorf("decryption secret %s: %w", key, err)
	}
	var out []string
	for k, v := range sec.Data {
		if strings.HasSuffix(k, ".agekey") {
			out = append(out, string(v))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("decryption secret %s has no key ending in .agekey", key)
	}
	return out, nil
}
