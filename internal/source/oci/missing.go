package oci

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"converge.dev/converge/internal/source"
)

// Missing says what of the manifest digest is gone from the repository
// url: the manifest, or, for an image index, any of its platform
// manifests (a rollback to an index whose arm64 image was deleted fails
// on arm64 nodes). Empty means all there; an error means the registry
// could not say.
func (f *Fetcher) Missing(ctx context.Context, url, digest string, auth Auth) ([]string, error) {
	repo, err := name.NewRepository(strings.TrimPrefix(url, "oci://"), f.nameOpts(auth)...)
	if err != nil {
		return nil, fmt.Errorf("oci %s: %w", url, err)
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(authenticator(auth))}
	desc, err := remote.Head(repo.Digest(digest), ropts...)
	if notFound(err) {
		return []string{repo.String() + "@" + digest}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("oci %s@%s: %w: %w", url, digest, source.ErrUnreachable, err)
	}
	if !desc.MediaType.IsIndex() {
		return nil, nil
	}
	idx, err := remote.Index(repo.Digest(digest), ropts...)
	if err != nil {
		return nil, fmt.Errorf("oci %s@%s: index: %w: %w", url, digest, source.ErrUnreachable, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("oci %s@%s: index: %w", url, digest, err)
	}
	var gone []string
	for _, m := range im.Manifests {
		_, err := remote.Head(repo.Digest(m.Digest.String()), ropts...)
		switch {
		case notFound(err):
			what := repo.String() + "@" + m.Digest.String()
			if m.Platform != nil {
				what += " (" + m.Platform.String() + ")"
			}
			gone = append(gone, what)
		case err != nil:
			return nil, fmt.Errorf("oci %s@%s: %w: %w", url, m.Digest, source.ErrUnreachable, err)
		}
	}
	return gone, nil
}

func notFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}
