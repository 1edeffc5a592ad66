package flux

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/source/git"
)

// GitAuth reads a GitRepository's credentials from spec.secretRef, as
// Flux names the keys; none without one.
func GitAuth(ctx context.Context, r client.Reader, repo *sourcev1.GitRepository) (git.Auth, error) {
	if repo.Spec.SecretRef == nil {
		return git.Auth{}, nil
	}
	sec := &corev1.Secret{}
	key := types.NamespacedName{Namespace: repo.Namespace, Name: repo.Spec.SecretRef.Name}
	if err := r.Get(ctx, key, sec); err != nil {
		return git.Auth{}, fmt.Errorf("secretRef %s: %w", key, err)
	}
	d := sec.Data
	return git.Auth{Username: string(d["username"]), Password: string(d["password"]), BearerToken: string(d["bearerToken"]),
		SSHKey: d["identity"], KnownHosts: d["known_hosts"]}, nil
}
