// Package promotion holds the pure rules of environment promotion (the
// seed's §2.3 and §7): what a pinned image reference is, what a freight
// is and how it is named, when a stage has baked long enough, which gates
// a risk level requires, and what a promotion pull request and its
// evidence file say. It does no I/O: the controller, the CLI and the PR
// gate all decide with these same functions, so they cannot disagree.
package promotion

import (
	"fmt"
	"regexp"
	"strings"
)

// Image is a container image reference split into its parts.
type Image struct {
	// Repository is the registry and path, without tag or digest
	// ("registry.example.com/orders-api").
	Repository string
	// Tag is the tag, if any ("1.42.0").
	Tag string
	// Digest is "sha256:<64 hex>", if any.
	Digest string
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// ValidDigest says whether d is "sha256:" and 64 lowercase hex digits.
func ValidDigest(d string) bool { return digestRE.MatchString(d) }

// ParseImage splits ref into repository, tag and digest. It does not
// add a registry or "library/": a reference is compared with a Pipeline's
// artifact image as written, since both come from the same repository.
func ParseImage(ref string) (Image, error) {
	var im Image
	rest := ref
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		im.Digest = rest[i+1:]
		rest = rest[:i]
		if !ValidDigest(im.Digest) {
			return Image{}, fmt.Errorf("image %q: digest %q is not sha256:<64 hex>", ref, im.Digest)
		}
	}
	// A tag follows the last colon after the last slash; a colon before
	// it is a registry port.
	if i := strings.LastIndexByte(rest, ':'); i > strings.LastIndexByte(rest, '/') {
		im.Tag = rest[i+1:]
		rest = rest[:i]
	}
	if rest == "" {
		return Image{}, fmt.Errorf("image %q names no repository", ref)
	}
	im.Repository = rest
	return im, nil
}

// String is the reference: repository[:tag][@digest].
func (im Image) String() string {
	s := im.Repository
	if im.Tag != "" {
		s += ":" + im.Tag
	}
	if im.Digest != "" {
		s += "@" + im.Digest
	}
	return s
}

// Pinned says why ref is not pinned to a digest, or "" when it is. A
// tag alone, ":latest" included, names whatever was pushed last.
func Pinned(ref string) string {
	im, err := ParseImage(ref)
	if err != nil {
		return err.Error()
	}
	switch {
	case im.Digest != "":
		return ""
	case im.Tag == "latest" || im.Tag == "":
		return fmt.Sprintf("image %q floats (:latest): promote a digest, repo[:tag]@sha256:...", ref)
	default:
		return fmt.Sprintf("image %q has a tag without a digest: the tag can move; pin it as %s@sha256:...", ref, ref)
	}
}

// DigestOfImageID reads the digest from a pod's containerStatuses
// imageID ("docker-pullable://repo@sha256:...", "repo@sha256:...",
// "sha256:..."), or "" when it names none.
func DigestOfImageID(id string) string {
	i := strings.LastIndex(id, "sha256:")
	if i < 0 || !ValidDigest(id[i:]) {
		return ""
	}
	return id[i:]
}
