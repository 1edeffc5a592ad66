package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/strvals"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	sigsyaml "sigs.k8s.io/yaml"

	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/dialect/flux"
)

// valuesFrom merges values from ConfigMaps and Secrets, in order, later
// ones winning, as Flux does. Errors name the object and key, never a
// value.
func (r *HelmReleaseReconciler) valuesFrom(ctx context.Context, hr *helmv2.HelmRelease) (map[string]any, error) {
	out := map[string]any{}
	for _, ref := range hr.Spec.ValuesFrom {
		key := types.NamespacedName{Namespace: hr.Namespace, Name: ref.Name}
		dataKey := orDefault(ref.ValuesKey, "values.yaml")
		data, err := refData(ctx, r.Client, ref.Kind, key)
		if apierrors.IsNotFound(err) && ref.Optional {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("valuesFrom: %w", err)
		}
		raw, found := data[dataKey]
		if !found {
			if ref.Optional {
				continue
			}
			return nil, fmt.Errorf("valuesFrom %s %s: no key %q", ref.Kind, key, dataKey)
		}
		if ref.TargetPath != "" {
			if err := strvals.ParseInto(ref.TargetPath+"="+string(raw), out); err != nil {
				return nil, fmt.Errorf("valuesFrom %s %s: targetPath %q: could not set the value", ref.Kind, key, ref.TargetPath)
			}
			continue
		}
		m := map[string]any{}
		if err := sigsyaml.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("valuesFrom %s %s key %q: not a YAML map", ref.Kind, key, dataKey)
		}
		out = chartutil.MergeTables(m, out)
	}
	return out, nil
}

// withInline merges spec.values over the values from valuesFrom: inline
// values win, as in Flux.
func withInline(hr *helmv2.HelmRelease, values map[string]any) (map[string]any, error) {
	if hr.Spec.Values == nil || len(hr.Spec.Values.Raw) == 0 {
		return values, nil
	}
	inline := map[string]any{}
	if err := json.Unmarshal(hr.Spec.Values.Raw, &inline); err != nil {
		return nil, fmt.Errorf("spec.values: %w", err)
	}
	return chartutil.MergeTables(inline, values), nil
}

// chartSource says which chart a HelmRelease wants and from which
// source: its chart template, or what its chartRef names (a HelmChart,
// at the version that HelmChart resolved, or an OCIRepository).
func (r *HelmReleaseReconciler) chartSource(ctx context.Context, hr *helmv2.HelmRelease) (chartRequest, error) {
	switch {
	case hr.Spec.ChartRef != nil:
		ref := hr.Spec.ChartRef
		key := types.NamespacedName{Namespace: orDefault(ref.Namespace, hr.Namespace), Name: ref.Name}
		switch ref.Kind {
		case "OCIRepository":
			return chartRequest{Kind: "OCIRepository", Key: key}, nil
		case "HelmChart":
		default:
			return chartRequest{}, fmt.Errorf("spec.chartRef.kind %q is not supported (HelmChart and OCIRepository are)", ref.Kind)
		}
		hc := &sourcev1.HelmChart{}
		if err := r.Client.Get(ctx, key, hc); err != nil {
			return chartRequest{}, fmt.Errorf("HelmChart %s: %w", key, err)
		}
		if hc.Status.Artifact == nil || !meta.IsStatusConditionTrue(hc.Status.Conditions, flux.ReadyCondition) {
			return chartRequest{}, fmt.Errorf("HelmChart %s is not ready", key)
		}
		req := chartRequest{Kind: orDefault(hc.Spec.SourceRef.Kind, "HelmRepository"),
			Key:   types.NamespacedName{Namespace: hc.Namespace, Name: hc.Spec.SourceRef.Name},
			Chart: hc.Spec.Chart, Strategy: hc.Spec.ReconcileStrategy}
		if req.Kind == "HelmRepository" {
			req.Version = hc.Status.Artifact.Revision // exactly what the HelmChart published
		}
		return req, nil
	case hr.Spec.Chart != nil:
		spec := hr.Spec.Chart.Spec
		return chartRequest{Kind: orDefault(spec.SourceRef.Kind, "HelmRepository"),
			Key:   types.NamespacedName{Namespace: orDefault(spec.SourceRef.Namespace, hr.Namespace), Name: spec.SourceRef.Name},
			Chart: spec.Chart, Version: spec.Version, Strategy: spec.ReconcileStrategy}, nil
	}
	return chartRequest{}, errors.New("spec.chart or spec.chartRef is required")
}
