package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/diff"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/helmrelease"
	"converge.dev/converge/internal/object"
)

// helmDrift compares the release's objects with the cluster; with mode
// enabled, it corrects what drifted (a kubectl edit), with warn it only
// says so.
func helmDrift(ctx context.Context, eng *engine.Engine, hr *helmv2.HelmRelease, out helmrelease.Outcome, ns string) error {
	mode := ""
	if d := hr.Spec.DriftDetection; d != nil {
		mode = d.Mode
	}
	if mode != "enabled" && mode != "warn" {
		meta.RemoveStatusCondition(&hr.Status.Conditions, "Drifted")
		return nil
	}
	objs, err := object.Decode([]byte(out.Release.Manifest), "release "+ns+"/"+out.Release.Name)
	if err != nil {
		return err
	}
	var ignore []diff.Ignore
	for i, rule := range hr.Spec.DriftDetection.Ignore {
		ig := diff.Ignore{JSONPointers: rule.Paths}
		if t := rule.Target; t != nil {
			for field, sel := range map[string]string{"labelSelector": t.LabelSelector, "annotationSelector": t.AnnotationSelector} {
				if _, err := labels.Parse(sel); err != nil {
					return fmt.Errorf("spec.driftDetection.ignore[%d].target.%s: %w", i, field, err)
				}
			}
			ig.Group, ig.Kind, ig.Name, ig.Namespace = t.Group, t.Kind, t.Name, t.Namespace
			ig.LabelSelector, ig.AnnotationSelector = t.LabelSelector, t.AnnotationSelector
		}
		ignore = append(ignore, ig)
	}
	drifted, err := eng.Drift(ctx, objs, ns, mode == "enabled", ignore)
	if err != nil {
		return err
	}
	if len(drifted) == 0 {
		meta.RemoveStatusCondition(&hr.Status.Conditions, "Drifted")
		return nil
	}
	names := make([]string, len(drifted))
	for i, d := range drifted {
		names[i] = d.String()
	}
	verb := "detected"
	if mode == "enabled" {
		verb = "corrected"
	}
	flux.SetCondition(&hr.Status.Conditions, hr.Generation, "Drifted", metav1.ConditionTrue, "DriftDetected",
		fmt.Sprintf("Cluster state drift %s: %s", verb, strings.Join(names, ", ")))
	return nil
}

// releaseInventory lists the release's objects, namespaced ones placed
// in the release's namespace, and the chart's CRDs, as Flux's
// helm-controller records them; hooks are not in it (Helm keeps them
// out of the manifest, and one annotated as a hook there is skipped).
func releaseInventory(eng *engine.Engine, rel *release.Release, c *chart.Chart) (*kustomizev1.ResourceInventory, error) {
	where := "release " + rel.Namespace + "/" + rel.Name
	objs, err := object.Decode([]byte(rel.Manifest), where)
	if err != nil {
		return nil, fmt.Errorf("inventory of %s: %w", where, err)
	}
	objs = slices.DeleteFunc(objs, func(d object.Decoded) bool {
		_, hook := d.Object.GetAnnotations()[release.HookAnnotation]
		return hook
	})
	refs, err := eng.Placed(objs, rel.Namespace)
	if err != nil {
		return nil, fmt.Errorf("inventory of %s: %w", where, err)
	}
	for _, f := range c.CRDObjects() {
		crds, err := object.Decode(f.File.Data, "chart "+c.Name()+" "+f.Filename)
		if err != nil {
			return nil, fmt.Errorf("inventory of %s: %w", where, err)
		}
		for _, d := range crds {
			refs = append(refs, object.RefOf(d.Object))
		}
	}
	return flux.RefInventory(refs), nil
}
