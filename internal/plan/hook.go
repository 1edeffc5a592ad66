package plan

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/object"
)

// Argo CD's hook annotations, honoured as-is.
const (
	HookAnnotation             = "argocd.argoproj.io/hook"
	HookDeletePolicyAnnotation = "argocd.argoproj.io/hook-delete-policy"
)

// Helm's hook annotations; Argo CD maps them onto its own phases, and so
// do we, so a chart's migration Job runs as a hook and is never pruned.
const (
	helmHook             = "helm.sh/hook"
	helmHookWeight       = "helm.sh/hook-weight"
	helmHookDeletePolicy = "helm.sh/hook-delete-policy"
)

// Phase is a hook's phase of a sync.
type Phase string

// The phases. Sync hooks run inside the sync's waves; PreSync before
// anything is applied; PostSync after everything applied is healthy;
// SyncFail only when the sync failed.
const (
	PreSync  Phase = "PreSync"
	Sync     Phase = "Sync"
	PostSync Phase = "PostSync"
	SyncFail Phase = "SyncFail"
	// Skip marks an object the sync must not apply at all.
	Skip Phase = "Skip"
	// PreDelete and PostDelete hooks never run in a sync: they run when
	// the unit is deleted, before its objects are deleted and after they
	// are gone.
	PreDelete  Phase = "PreDelete"
	PostDelete Phase = "PostDelete"
)

// DeletePolicy says when a hook object is deleted.
type DeletePolicy string

// The delete policies. With none given, BeforeHookCreation applies, as in
// Argo CD: a hook from the last sync is deleted before it runs again.
const (
	HookSucceeded      DeletePolicy = "HookSucceeded"
	HookFailed         DeletePolicy = "HookFailed"
	BeforeHookCreation DeletePolicy = "BeforeHookCreation"
)

// HookPhases returns the phases obj is a hook of; none for an ordinary
// object. An unknown phase is an error naming the annotation, never a
// silently ignored hook.
func HookPhases(obj *unstructured.Unstructured) ([]Phase, error) {
	ann := obj.GetAnnotations()
	if v, ok := ann[HookAnnotation]; ok {
		var out []Phase
		for _, p := range strings.Split(v, ",") {
			switch ph := Phase(strings.TrimSpace(p)); ph {
			case PreSync, Sync, PostSync, SyncFail, Skip, PreDelete, PostDelete:
				out = append(out, ph)
			default:
				return nil, fmt.Errorf("annotation %s: unknown phase %q (want PreSync, Sync, PostSync, SyncFail, Skip, PreDelete or PostDelete)", HookAnnotation, ph)
			}
		}
		return out, nil
	}
	v, ok := ann[helmHook]
	if !ok {
		return nil, nil
	}
	var out []Phase
	seen := map[Phase]bool{}
	for _, h := range strings.Split(v, ",") {
		var ph Phase
		switch strings.TrimSpace(h) {
		case "pre-install", "pre-upgrade":
			ph = PreSync
		case "post-install", "post-upgrade":
			ph = PostSync
		default: // test, rollback and delete hooks have no sync phase
			continue
		}
		if !seen[ph] {
			seen[ph] = true
			out = append(out, ph)
		}
	}
	if len(out) == 0 {
		return []Phase{Skip}, nil
	}
	return out, nil
}

// DeletePolicies returns obj's hook delete policies, BeforeHookCreation
// if it names none.
func DeletePolicies(obj *unstructured.Unstructured) []DeletePolicy {
	ann := obj.GetAnnotations()
	var out []DeletePolicy
	for _, p := range strings.Split(ann[HookDeletePolicyAnnotation], ",") {
		switch DeletePolicy(strings.TrimSpace(p)) {
		case HookSucceeded, HookFailed, BeforeHookCreation:
			out = append(out, DeletePolicy(strings.TrimSpace(p)))
		}
	}
	for _, p := range strings.Split(ann[helmHookDeletePolicy], ",") {
		switch strings.TrimSpace(p) {
		case "hook-succeeded":
			out = append(out, HookSucceeded)
		case "hook-failed":
			out = append(out, HookFailed)
		case "before-hook-creation":
			out = append(out, BeforeHookCreation)
		}
	}
	if len(out) == 0 {
		out = []DeletePolicy{BeforeHookCreation}
	}
	return out
}

// HasDeletePolicy reports whether obj's hook delete policies hold p.
func HasDeletePolicy(obj *unstructured.Unstructured, p DeletePolicy) bool {
	for _, q := range DeletePolicies(obj) {
		if q == p {
			return true
		}
	}
	return false
}

// IsHook reports whether d is a hook (or a Skip), which Make keeps out of
// the comparison, the inventory and pruning.
func IsHook(obj *unstructured.Unstructured) bool {
	ann := obj.GetAnnotations()
	_, a := ann[HookAnnotation]
	_, h := ann[helmHook]
	return a || h
}

// DeletionHooks returns the steps of the desired hooks of phase ph
// (PreDelete or PostDelete), by wave, for a unit's deletion.
func DeletionHooks(in Input, ph Phase) ([]Step, error) {
	var out []Step
	for _, d := range in.Desired {
		if !IsHook(d.Object) {
			continue
		}
		steps, err := hookSteps(d, in.Live[object.RefOf(d.Object).Key()], in.Unit)
		if err != nil {
			return nil, err
		}
		for _, s := range steps {
			if s.Hook == ph {
				out = append(out, s)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return less(out[i], out[j]) })
	return out, nil
}

// hookSteps turns one hook object into a step per phase.
func hookSteps(d object.Decoded, live *unstructured.Unstructured, unit string) ([]Step, error) {
	phases, err := HookPhases(d.Object)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", d.Source, object.RefOf(d.Object), err)
	}
	wave, err := waveOf(d)
	if err != nil {
		return nil, err
	}
	if _, ok := d.Object.GetAnnotations()[WaveAnnotation]; !ok {
		if w, ok := d.Object.GetAnnotations()[helmHookWeight]; ok {
			if _, err := fmt.Sscanf(w, "%d", &wave); err != nil {
				return nil, fmt.Errorf("%s: %s: annotation %s: %q is not an integer", d.Source, object.RefOf(d.Object), helmHookWeight, w)
			}
		}
	}
	var out []Step
	for _, ph := range phases {
		if ph == Skip {
			continue
		}
		s := Step{Ref: object.RefOf(d.Object), Action: Hook, Hook: ph, Wave: wave, Source: d.Source, Desired: d.Object, Live: live}
		if owner := ownerOf(live); owner != "" && owner != unit {
			s.Action, s.Reason = Conflict, fmt.Sprintf("owned by unit %q", owner)
		}
		out = append(out, s)
	}
	return out, nil
}
