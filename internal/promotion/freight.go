package promotion

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
)

// Artifact is one image of a freight.
type Artifact struct {
	// Name is the Pipeline's name for the artifact ("app").
	Name string `json:"name"`
	// Image is its repository.
	Image string `json:"image"`
	// Tag is for people; the digest identifies the artifact.
	Tag    string `json:"tag,omitempty"`
	Digest string `json:"digest"`
}

// Reference is the pinned reference, repository[:tag]@digest.
func (a Artifact) Reference() string {
	return Image{Repository: a.Image, Tag: a.Tag, Digest: a.Digest}.String()
}

// FreightID names a set of artifacts by content: the sha256 of the
// canonical JSON of the artifacts sorted by name, tags left out (a tag is
// a label for people; the same digests are the same freight).
func FreightID(arts []Artifact) string {
	type canon struct {
		Name   string `json:"name"`
		Image  string `json:"image"`
		Digest string `json:"digest"`
	}
	cs := make([]canon, 0, len(arts))
	for _, a := range arts {
		cs = append(cs, canon{a.Name, a.Image, a.Digest})
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	data, _ := json.Marshal(cs) // strings only: cannot fail
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ShortID is the first seven hex digits of a freight id, for names.
func ShortID(id string) string {
	h := id
	if len(h) > 7 && h[:7] == "sha256:" {
		h = h[7:]
	}
	if len(h) > 7 {
		h = h[:7]
	}
	return h
}

// Digests maps artifact names to digests.
func Digests(arts []Artifact) map[string]string {
	m := make(map[string]string, len(arts))
	for _, a := range arts {
		m[a.Name] = a.Digest
	}
	return m
}

// SameDigests says whether a and b name the same digest for every
// artifact of either.
func SameDigests(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
