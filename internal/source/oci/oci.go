// Package oci fetches artifacts from OCI registries with
// go-containerregistry, as Flux's OCIRepository does: a tag, a semver
// range over tags, or a digest; one layer (a tar+gzip of manifests) is
// extracted into a snapshot folder, cached by digest.
package oci

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/gofrs/flock"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"converge.dev/converge/internal/source"
)

// FluxContentMediaType is the layer media type of Flux's artifacts.
const FluxContentMediaType = "application/vnd.cncf.flux.content.v1.tar+gzip"

// Ref selects an artifact: Digest wins over SemVer, SemVer over Tag;
// all empty is "latest".
type Ref struct {
	Tag, SemVer, Digest string
}

// Options configure a Fetcher.
type Options struct {
	// CacheDir holds extracted artifacts, one folder per digest.
	CacheDir string
	// Insecure allows plain HTTP registries (loopback tests, local
	// registries).
	Insecure bool
	// MaxSize bounds an extracted artifact. If zero, 256 MiB.
	MaxSize int64
}

// Fetcher fetches artifacts; safe for concurrent use.
type Fetcher struct {
	o  Options
	mu sync.Mutex
}

// New returns a Fetcher.
func New(o Options) *Fetcher {
	if o.MaxSize == 0 {
		o.MaxSize = 256 << 20
	}
	return &Fetcher{o: o}
}

// Auth are registry credentials (empty is anonymous) and whether the
// registry may be plain HTTP.
type Auth struct {
	Username, Password string
	Insecure           bool
}

// Resolve returns the tag (if any) and the manifest digest of ref.
func (f *Fetcher) Resolve(ctx context.Context, url string, ref Ref, auth Auth) (tag, digest string, err error) {
	repoName := strings.TrimPrefix(url, "oci://")
	repo, err := name.NewRepository(repoName, f.nameOpts(auth)...)
	if err != nil {
		return "", "", fmt.Errorf("oci %s: %w", url, err)
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(authenticator(auth))}
	switch {
	case ref.Digest != "":
		return "", ref.Digest, nil
	case ref.SemVer != "":
		c, err := semver.NewConstraint(ref.SemVer)
		if err != nil {
			return "", "", fmt.Errorf("oci %s: semver %q: %w", url, ref.SemVer, err)
		}
		tags, err := remote.List(repo, ropts...)
		if err != nil {
			return "", "", fmt.Errorf("oci %s: list tags: %w: %w", url, source.ErrUnreachable, err)
		}
		var best *semver.Version
		for _, t := range tags {
			// Helm stores build metadata with "_" for "+", which a tag
			// cannot hold.
			v, err := semver.NewVersion(strings.ReplaceAll(t, "_", "+"))
			if err == nil && c.Check(v) && (best == nil || v.GreaterThan(best)) {
				best, tag = v, t
			}
		}
		if best == nil {
			sort.Strings(tags)
			return "", "", fmt.Errorf("oci %s: no tag matches %q (tags: %s)", url, ref.SemVer, strings.Join(tags, ", "))
		}
	default:
		tag = ref.Tag
		if tag == "" {
			tag = "latest"
		}
	}
	d, err := remote.Head(repo.Tag(tag), ropts...)
	if err != nil {
		return "", "", fmt.Errorf("oci %s:%s: %w: %w", url, tag, source.ErrUnreachable, err)
	}
	return tag, d.Digest.String(), nil
}

// Fetch resolves ref and extracts the artifact's content layer (the
// first layer of mediaType, or the first layer if mediaType is empty).
// The snapshot's revision is the manifest digest.
func (f *Fetcher) Fetch(ctx context.Context, url string, ref Ref, mediaType string, auth Auth) (source.Snapshot, error) {
	_, digest, err := f.Resolve(ctx, url, ref, auth)
	if err != nil {
		return source.Snapshot{}, err
	}
	dir := filepath.Join(f.o.CacheDir, strings.ReplaceAll(digest, ":", "-"))
	if fi, err := os.Stat(filepath.Join(dir, ".complete")); err == nil && !fi.IsDir() {
		return source.Snapshot{Revision: digest, Dir: filepath.Join(dir, "content")}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return source.Snapshot{}, err
	}
	lock := flock.New(dir + ".lock")
	if _, err := lock.TryLockContext(ctx, 100*time.Millisecond); err != nil {
		return source.Snapshot{}, err
	}
	defer lock.Unlock()
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return source.Snapshot{Revision: digest, Dir: filepath.Join(dir, "content")}, nil
	}
	repo := strings.TrimPrefix(url, "oci://")
	d, err := name.NewDigest(repo+"@"+digest, f.nameOpts(auth)...)
	if err != nil {
		return source.Snapshot{}, fmt.Errorf("oci %s: %w", url, err)
	}
	img, err := remote.Image(d, remote.WithContext(ctx), remote.WithAuth(authenticator(auth)))
	if err != nil {
		return source.Snapshot{}, fmt.Errorf("oci %s@%s: %w: %w", url, digest, source.ErrUnreachable, err)
	}
	layer, err := pickLayer(img, mediaType)
	if err != nil {
		return source.Snapshot{}, fmt.Errorf("oci %s@%s: %w", url, digest, err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		return source.Snapshot{}, fmt.Errorf("oci %s@%s: %w", url, digest, err)
	}
	defer rc.Close()
	content := filepath.Join(dir, "content")
	os.RemoveAll(content)
	if err := untar(rc, content, f.o.MaxSize); err != nil {
		return source.Snapshot{}, fmt.Errorf("oci %s@%s: extract: %w", url, digest, err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".complete"), nil, 0o644); err != nil {
		return source.Snapshot{}, err
	}
	return source.Snapshot{Revision: digest, Dir: content}, nil
}

func (f *Fetcher) nameOpts(a Auth) []name.Option {
	if f.o.Insecure || a.Insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

func authenticator(a Auth) authn.Authenticator {
	if a.Username == "" && a.Password == "" {
		return authn.Anonymous
	}
	return &authn.Basic{Username: a.Username, Password: a.Password}
}

func pickLayer(img v1.Image, mediaType string) (v1.Layer, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		mt, err := l.MediaType()
		if err != nil {
			return nil, err
		}
		if mediaType == "" || string(mt) == mediaType {
			return l, nil
		}
	}
	return nil, fmt.Errorf("no layer of media type %q", mediaType)
}

// ErrUnsafePath is an archive entry that would land outside the folder.
var ErrUnsafePath = errors.New("archive entry outside the artifact")

// untar extracts regular files and folders only (no links, devices),
// refusing paths that leave dir and content larger than max.
func untar(r io.Reader, dir string, max int64) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		clean := filepath.Clean(filepath.Join(dir, h.Name))
		if clean != dir && !strings.HasPrefix(clean, dir+string(filepath.Separator)) {
			return fmt.Errorf("%s: %w", h.Name, ErrUnsafePath)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(clean, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			total += h.Size
			if total > max {
				return fmt.Errorf("content larger than %d bytes", max)
			}
			if err := os.MkdirAll(filepath.Dir(clean), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(clean, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, io.LimitReader(tr, h.Size))
			out.Close()
			if err != nil {
				return err
			}
		}
	}
}
