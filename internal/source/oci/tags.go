package oci

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"converge.dev/converge/internal/source"
)

// Repository parses an image repository as a registry client reads it
// ("app" is index.docker.io/library/app); it is refused with a tag or a
// digest, which an image repository to scan must not have.
func Repository(image string, auth Auth) (name.Repository, error) {
	var opts []name.Option
	if auth.Insecure {
		opts = append(opts, name.Insecure)
	}
	if strings.Contains(image, "@") || strings.Contains(image[strings.LastIndex(image, "/")+1:], ":") {
		return name.Repository{}, fmt.Errorf("image %q: want a repository without tag or digest", image)
	}
	repo, err := name.NewRepository(image, opts...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("image %q: %w", image, err)
	}
	return repo, nil
}

// Tags lists the tags of an image repository.
func Tags(ctx context.Context, image string, auth Auth) ([]string, error) {
	repo, err := Repository(image, auth)
	if err != nil {
		return nil, err
	}
	tags, err := remote.List(repo, remote.WithContext(ctx), remote.WithAuth(authenticator(auth)))
	if err != nil {
		return nil, fmt.Errorf("image %s: list tags: %w: %w", repo.Name(), source.ErrUnreachable, err)
	}
	return tags, nil
}

// DockerConfigAuth reads the credentials for image's registry from a
// kubernetes.io/dockerconfigjson Secret's .dockerconfigjson: the entry
// whose key is the registry's host (with or without scheme or path).
// No entry is anonymous access.
func DockerConfigAuth(data []byte, image string) (Auth, error) {
	var cfg struct {
		Auths map[string]struct {
			Username string `json:"username"`
			Password string `json:"password"`
			Auth     string `json:"auth"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		// The JSON error could quote the Secret's content.
		return Auth{}, fmt.Errorf(".dockerconfigjson is not a Docker config JSON")
	}
	repo, err := name.NewRepository(image, name.Insecure)
	if err != nil {
		return Auth{}, fmt.Errorf("image %q: %w", image, err)
	}
	host := repo.RegistryStr()
	for key, a := range cfg.Auths {
		k := strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
		if i := strings.Index(k, "/"); i >= 0 {
			k = k[:i]
		}
		if k != host && !(host == name.DefaultRegistry && k == "docker.io") {
			continue
		}
		out := Auth{Username: a.Username, Password: a.Password}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return Auth{}, fmt.Errorf(".dockerconfigjson auths[%q].auth is not base64", key)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return Auth{}, fmt.Errorf(".dockerconfigjson auths[%q].auth is not user:password", key)
			}
			out.Username, out.Password = user, pass
		}
		return out, nil
	}
	return Auth{}, nil
}
