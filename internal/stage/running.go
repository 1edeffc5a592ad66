package stage

import (
	"fmt"
	"sort"
	"strings"

	"converge.dev/converge/internal/promotion"
)

// Running is what a stage runs, decided from its units read live.
type Running struct {
	// Digests are the artifacts' digests, by name, when every container
	// of the artifact's image, in every unit, pins the same one and its
	// pods run it; empty otherwise.
	Digests map[string]string
	// Images are the pinned references, one per artifact.
	Images []string
	// Artifacts are the same with tags, for a freight.
	Artifacts []promotion.Artifact
	// Healthy: every unit ready, every rollout complete, every pod
	// running the pinned digest.
	Healthy bool
	// Why says what is missing, naming the object and container.
	Why string
	// Revision is the units' revision; "" when they disagree.
	Revision string
	// Rollback is set when a workload of the stage was rolled back in
	// the cluster (an Argo Rollout aborted, a Flagger Canary failed): the
	// stage does not run what Git pins, and nothing is promoted from it.
	Rollback *ClusterRollback
}

// ClusterRollback is a stage whose cluster went back on what Git pins.
type ClusterRollback struct {
	// Why names each workload rolled back, with its controller's account.
	Why string
	// Pinned are the artifacts Git pins; Running what the cluster runs
	// instead (a rolled-back workload's stable pods; the other workloads'
	// pins): what Git would have to say to match. Running is empty when
	// that is not one pinned digest per artifact.
	Pinned, Running []promotion.Artifact
}

// Seen is r as one observation for the bake clock.
func (r Running) Seen() promotion.Seen {
	return promotion.Seen{Digests: r.Digests, Healthy: r.Healthy, Why: r.Why}
}

// Decide reads which digests the units run for each artifact (name and
// image set; tags and digests ignored). It is pure.
func Decide(units []Unit, arts []promotion.Artifact) Running {
	r := Running{Digests: map[string]string{}, Healthy: true}
	var why []string
	fail := func(format string, a ...any) {
		r.Healthy = false
		why = append(why, fmt.Sprintf(format, a...))
	}
	revs := map[string]bool{}
	for _, u := range units {
		revs[u.Revision] = true
		if !u.Ready {
			fail("%s is %s", u.Target, u.Message)
		}
	}
	if len(revs) == 1 {
		for rev := range revs {
			r.Revision = rev
		}
	}
	var rolled []string
	for _, u := range units {
		for _, w := range u.Workloads {
			if w.Rollback != nil {
				rolled = append(rolled, fmt.Sprintf("%s: %s", w, w.Rollback.Message))
			}
		}
	}
	if len(rolled) > 0 {
		r.Rollback = &ClusterRollback{Why: "rolled back in cluster: " + strings.Join(rolled, "; ")}
		fail("%s", r.Rollback.Why)
	}
	pinned := true
	for _, a := range arts {
		seen := map[string][]string{} // digest -> where
		back := map[string]promotion.Artifact{}
		rolledBack := false // a rolled-back workload's template has a
		tag := ""
		found := false
		for _, u := range units {
			for _, w := range u.Workloads {
				if w.Rollback != nil {
					for _, b := range stableRefs(w, a) {
						back[b.Reference()] = b
					}
				}
				for _, c := range w.Containers {
					im, err := promotion.ParseImage(c.Image)
					if err != nil || im.Repository != a.Image {
						continue
					}
					found = true
					where := fmt.Sprintf("%s container %s", w, c.Name)
					if msg := promotion.Pinned(c.Image); msg != "" {
						pinned = false
						fail("%s: %s", where, msg)
						continue
					}
					seen[im.Digest] = append(seen[im.Digest], where)
					tag = im.Tag
					if w.Rollback != nil {
						rolledBack = true
						continue // its pods are the stable ones: said above
					}
					if !w.Complete {
						fail("%s: rollout not complete: %s", w, w.Message)
					}
					if len(c.Pods) == 0 {
						fail("%s: no pod runs it", where)
					}
					for _, pod := range sortedKeys(c.Pods) {
						id := c.Pods[pod]
						switch d := promotion.DigestOfImageID(id); {
						case id == "":
							fail("%s: pod %s has not started it", where, pod)
						case d == "":
							fail("%s: pod %s reports image %q, with no digest", where, pod, id)
						case d != im.Digest:
							// The template pins one digest and the pod runs
							// another: a mutable tag resolved at pull time, or
							// a webhook rewrote the image.
							fail("%s: pod %s runs %s, not the pinned %s", where, pod, d, im.Digest)
						}
					}
				}
			}
		}
		switch {
		case !found:
			pinned = false
			fail("no workload of the stage runs %s (artifact %s)", a.Image, a.Name)
		case len(seen) > 1:
			pinned = false
			var parts []string
			for _, d := range sortedKeys(seen) {
				parts = append(parts, d+" in "+strings.Join(seen[d], ", "))
			}
			fail("artifact %s runs %d digests: %s", a.Name, len(seen), strings.Join(parts, "; "))
		case len(seen) == 1:
			for d := range seen {
				r.Digests[a.Name] = d
				art := promotion.Artifact{Name: a.Name, Image: a.Image, Tag: tag, Digest: d}
				r.Artifacts = append(r.Artifacts, art)
				r.Images = append(r.Images, art.Reference())
			}
		}
		if r.Rollback != nil {
			runs, ok := r.Rollback.runs(a, rolledBack, r.Artifacts, back)
			if !ok {
				fail("%s", runs.Image)
			} else {
				r.Rollback.Running = append(r.Rollback.Running, runs)
			}
		}
	}
	if r.Rollback != nil {
		// The cluster does not run what Git pins: report Git's pins as
		// what was asked, and nothing as what runs, so no promotion is
		// taken from this stage.
		r.Rollback.Pinned = r.Artifacts
		if len(r.Rollback.Running) != len(arts) || !pinned {
			r.Rollback.Running = nil
		}
		pinned = false
	}
	if !pinned {
		r.Digests, r.Images, r.Artifacts = nil, nil, nil
	}
	r.Why = strings.Join(why, "; ")
	return r
}

// runs is what the cluster runs of artifact a: the one stable reference
// of the rolled-back workloads, or, if none of them has a (rolledBack
// false), what Git pins. When that is not one pinned reference, ok is
// false and the returned Image says why.
func (cr *ClusterRollback) runs(a promotion.Artifact, rolledBack bool, pins []promotion.Artifact, back map[string]promotion.Artifact) (promotion.Artifact, bool) {
	switch {
	case len(back) == 1:
		for _, b := range back {
			return b, true
		}
	case len(back) == 0 && rolledBack:
		return promotion.Artifact{Image: fmt.Sprintf("artifact %s: the rolled-back workloads' stable pods were not found", a.Name)}, false
	case len(back) == 0:
		for _, p := range pins {
			if p.Name == a.Name {
				return p, true
			}
		}
		return promotion.Artifact{Image: fmt.Sprintf("artifact %s: Git pins no single digest for it", a.Name)}, false
	}
	return promotion.Artifact{Image: fmt.Sprintf("artifact %s: the rolled-back workloads run %d references: %s", a.Name, len(back), strings.Join(sortedKeys(back), ", "))}, false
}

// stableRefs are the pinned references of a that w's stable pods run. A
// stable template without a digest is pinned by what its pods report,
// when they agree.
func stableRefs(w Workload, a promotion.Artifact) []promotion.Artifact {
	var out []promotion.Artifact
	for _, c := range w.Rollback.Containers {
		im, err := promotion.ParseImage(c.Image)
		if err != nil || im.Repository != a.Image {
			continue
		}
		digest := im.Digest
		if digest == "" {
			ds := map[string]bool{}
			for _, id := range c.Pods {
				ds[promotion.DigestOfImageID(id)] = true
			}
			if len(ds) != 1 || ds[""] {
				continue
			}
			for d := range ds {
				digest = d
			}
		}
		out = append(out, promotion.Artifact{Name: a.Name, Image: a.Image, Tag: im.Tag, Digest: digest})
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Pick is the freight a promotion from this stage moves: what it runs.
// A digest given (sha256:...) must be the one running: promoting anything
// else would promote what the stage never ran.
func (r Running) Pick(stageName, digest string) ([]promotion.Artifact, error) {
	if r.Rollback != nil {
		return nil, fmt.Errorf("stage %s was %s: nothing is promoted from it until Git pins what it runs", stageName, r.Rollback.Why)
	}
	if len(r.Digests) == 0 {
		return nil, fmt.Errorf("stage %s runs no pinned digest: %s", stageName, r.Why)
	}
	if digest != "" {
		for _, a := range r.Artifacts {
			if a.Digest == digest {
				return r.Artifacts, nil
			}
		}
		return nil, fmt.Errorf("digest %s is not running in stage %s (it runs %s): a promotion moves what its source stage runs", digest, stageName, strings.Join(r.Images, ", "))
	}
	return r.Artifacts, nil
}
