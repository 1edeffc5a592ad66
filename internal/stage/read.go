// Package stage reads what a promotion stage really runs: for each of its
// units (an Argo CD Application, a Flux Kustomization or HelmRelease), the
// unit's sync and health, the workloads it applied, whether their rollout
// is complete, and the image digests their pods report. Promotion trusts
// this read, not what Git or a registry tag says.
package stage

import (
	"context"
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	"converge.dev/converge/internal/dialect/argocd"
	"converge.dev/converge/internal/promotion"
)

// Target names a unit.
type Target struct {
	Kind, Namespace, Name string
}

func (t Target) String() string { return t.Kind + " " + t.Namespace + "/" + t.Name }

// Unit is one unit read live.
type Unit struct {
	Target
	// Ready: an Application Synced and Healthy, a Kustomization or
	// HelmRelease Ready=True.
	Ready bool
	// Revision is the revision the unit applied.
	Revision string
	// Message says why it is not ready.
	Message   string
	Workloads []Workload
}

// Workload is a Deployment, StatefulSet or DaemonSet the unit applied,
// or an Argo Rollout or Flagger Canary with what it drives.
type Workload struct {
	Kind, Namespace, Name string
	// Complete: the controller saw the latest spec and every replica is
	// updated and available; Message says what is missing.
	Complete bool
	Message  string
	// Containers are the pod template's, as Git has it, with the pods
	// that run it.
	Containers []Container
	// Rollback is set when a progressive-delivery controller aborted the
	// update and went back to its stable pods: the cluster runs something
	// other than Git.
	Rollback *Rollback
}

// Rollback is what a workload runs after its controller gave up the
// update Git asked for.
type Rollback struct {
	// Message is the controller's own account (Argo Rollouts'
	// status.message, Flagger's Promoted condition).
	Message string
	// Containers are the stable pod template's, with the stable pods; nil
	// when the stable pods cannot be found.
	Containers []Container
}

func (w Workload) String() string { return w.Kind + " " + w.Namespace + "/" + w.Name }

// Container is one container of the pod template, with what its pods
// report.
type Container struct {
	Name  string
	Image string
	// Pods are the current pods' image IDs, by pod name.
	Pods map[string]string
}

// Read reads target and its workloads through c.
func Read(ctx context.Context, c client.Reader, t Target) (Unit, error) {
	u := Unit{Target: t}
	var refs []workloadRef
	key := types.NamespacedName{Namespace: t.Namespace, Name: t.Name}
	switch t.Kind {
	case "Application":
		app := &v1alpha1.Application{}
		if err := c.Get(ctx, key, app); err != nil {
			return u, fmt.Errorf("%s: %w", t, err)
		}
		if d := app.Spec.Destination; !argocd.InClusterDestination(d) {
			// Its workloads are not in the cluster read here.
			return u, fmt.Errorf("%s: it deploys to cluster %s; stages on another cluster are not read yet", t, d.Name+d.Server)
		}
		st := app.Status
		u.Revision = st.Sync.Revision
		u.Ready = st.Sync.Status == "Synced" && st.Health.Status == "Healthy"
		if !u.Ready {
			u.Message = fmt.Sprintf("%s and %s", orUnknown(st.Sync.Status), orUnknown(st.Health.Status))
			if st.Health.Message != "" {
				u.Message += ": " + st.Health.Message
			} else if op := st.OperationState; op != nil && op.Message != "" {
				u.Message += ": " + op.Message
			}
		}
		for _, r := range st.Resources {
			refs = append(refs, workloadRef{group: r.Group, kind: r.Kind, namespace: r.Namespace, name: r.Name})
		}
	case "Kustomization":
		ks := &kustomizev1.Kustomization{}
		if err := c.Get(ctx, key, ks); err != nil {
			return u, fmt.Errorf("%s: %w", t, err)
		}
		u.Revision = ks.Status.LastAppliedRevision
		u.Ready, u.Message = ready(ks.Status.Conditions, ks.Generation, ks.Status.ObservedGeneration)
		if inv := ks.Status.Inventory; inv != nil {
			for _, e := range inv.Entries {
				if ns, name, group, kind, ok := e.Parts(); ok {
					refs = append(refs, workloadRef{namespace: ns, name: name, group: group, kind: kind})
				}
			}
		}
	case "HelmRelease":
		hr := &helmv2.HelmRelease{}
		if err := c.Get(ctx, key, hr); err != nil {
			return u, fmt.Errorf("%s: %w", t, err)
		}
		u.Revision = hr.Status.LastAttemptedRevision
		u.Ready, u.Message = ready(hr.Status.Conditions, hr.Generation, hr.Status.ObservedGeneration)
		var err error
		if refs, err = helmWorkloads(ctx, c, hr); err != nil {
			return u, fmt.Errorf("%s: %w", t, err)
		}
	default:
		return u, fmt.Errorf("%s: kind %q is not Application, Kustomization or HelmRelease", t, t.Kind)
	}
	// An Argo Rollout or a Flagger Canary is read first: it says what
	// runs for the Deployments it drives, which are then not read alone
	// (Argo scales a workloadRef's Deployment to zero, Flagger its target).
	driven := map[string]bool{}
	for _, r := range refs {
		var w Workload
		var err error
		switch {
		case r.group == rolloutGVK.Group && r.kind == rolloutGVK.Kind:
			w, err = readRollout(ctx, c, r, driven)
		case r.group == canaryGVK.Group && r.kind == canaryGVK.Kind:
			w, err = readCanary(ctx, c, r, driven)
		default:
			continue
		}
		if err != nil {
			return u, fmt.Errorf("%s: %w", t, err)
		}
		u.Workloads = append(u.Workloads, w)
	}
	for _, r := range refs {
		if r.group != "apps" || (r.kind != "Deployment" && r.kind != "StatefulSet" && r.kind != "DaemonSet") ||
			(r.kind == "Deployment" && driven[r.namespace+"/"+r.name]) {
			continue
		}
		w, err := readWorkload(ctx, c, r)
		if err != nil {
			return u, fmt.Errorf("%s: %w", t, err)
		}
		u.Workloads = append(u.Workloads, w)
	}
	return u, nil
}

type workloadRef struct{ group, kind, namespace, name string }

func ready(conds []metav1.Condition, gen, observed int64) (bool, string) {
	c := meta.FindStatusCondition(conds, "Ready")
	switch {
	case c == nil:
		return false, "not reconciled yet"
	case observed < gen:
		return false, fmt.Sprintf("generation %d not reconciled yet", gen)
	case c.Status != metav1.ConditionTrue:
		return false, c.Reason + ": " + c.Message
	}
	return true, ""
}

// helmWorkloads finds the release's workloads by the annotations Helm
// writes on everything it installs.
func helmWorkloads(ctx context.Context, c client.Reader, hr *helmv2.HelmRelease) ([]workloadRef, error) {
	ns := hr.Spec.TargetNamespace
	if ns == "" {
		ns = hr.Namespace
	}
	release := hr.Spec.ReleaseName
	if release == "" {
		release = hr.Name
		if hr.Spec.TargetNamespace != "" {
			release = hr.Spec.TargetNamespace + "-" + hr.Name
		}
	}
	var refs []workloadRef
	lists := map[schema.GroupKind]client.ObjectList{{Group: "apps", Kind: "Deployment"}: &appsv1.DeploymentList{},
		{Group: "apps", Kind: "StatefulSet"}: &appsv1.StatefulSetList{}, {Group: "apps", Kind: "DaemonSet"}: &appsv1.DaemonSetList{}}
	for _, gvk := range []schema.GroupVersionKind{rolloutGVK, canaryGVK} {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		lists[gvk.GroupKind()] = l
	}
	for gk, l := range lists {
		if err := c.List(ctx, l, client.InNamespace(ns)); err != nil {
			if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
				continue // the cluster does not serve the kind: none to find
			}
			return nil, err
		}
		items, _ := meta.ExtractList(l)
		for _, it := range items {
			o := it.(client.Object)
			if o.GetAnnotations()["meta.helm.sh/release-name"] == release && o.GetAnnotations()["meta.helm.sh/release-namespace"] == ns {
				refs = append(refs, workloadRef{group: gk.Group, kind: gk.Kind, namespace: ns, name: o.GetName()})
			}
		}
	}
	// Map order must not decide which workload is reported first.
	sort.Slice(refs, func(i, j int) bool {
		return refs[i].group+"/"+refs[i].kind+"/"+refs[i].name < refs[j].group+"/"+refs[j].kind+"/"+refs[j].name
	})
	return refs, nil
}

func readWorkload(ctx context.Context, c client.Reader, r workloadRef) (Workload, error) {
	w := Workload{Kind: r.kind, Namespace: r.namespace, Name: r.name}
	key := types.NamespacedName{Namespace: r.namespace, Name: r.name}
	var tmpl corev1.PodTemplateSpec
	var sel *metav1.LabelSelector
	switch r.kind {
	case "Deployment":
		d := &appsv1.Deployment{}
		if err := c.Get(ctx, key, d); err != nil {
			return w, fmt.Errorf("%s: %w", w, err)
		}
		tmpl, sel = d.Spec.Template, d.Spec.Selector
		w.Complete, w.Message = deploymentDone(d)
	case "StatefulSet":
		s := &appsv1.StatefulSet{}
		if err := c.Get(ctx, key, s); err != nil {
			return w, fmt.Errorf("%s: %w", w, err)
		}
		tmpl, sel = s.Spec.Template, s.Spec.Selector
		want := int32(1)
		if s.Spec.Replicas != nil {
			want = *s.Spec.Replicas
		}
		st := s.Status
		switch {
		case st.ObservedGeneration < s.Generation:
			w.Message = "the statefulset controller has not seen the latest spec"
		case st.UpdateRevision != "" && st.CurrentRevision != st.UpdateRevision, st.UpdatedReplicas < want:
			w.Message = fmt.Sprintf("%d of %d replicas updated", st.UpdatedReplicas, want)
		case st.ReadyReplicas < want:
			w.Message = fmt.Sprintf("%d of %d replicas ready", st.ReadyReplicas, want)
		default:
			w.Complete = true
		}
	case "DaemonSet":
		ds := &appsv1.DaemonSet{}
		if err := c.Get(ctx, key, ds); err != nil {
			return w, fmt.Errorf("%s: %w", w, err)
		}
		tmpl, sel = ds.Spec.Template, ds.Spec.Selector
		st := ds.Status
		switch {
		case st.ObservedGeneration < ds.Generation:
			w.Message = "the daemonset controller has not seen the latest spec"
		case st.UpdatedNumberScheduled < st.DesiredNumberScheduled:
			w.Message = fmt.Sprintf("%d of %d pods updated", st.UpdatedNumberScheduled, st.DesiredNumberScheduled)
		case st.NumberAvailable < st.DesiredNumberScheduled:
			w.Message = fmt.Sprintf("%d of %d pods available", st.NumberAvailable, st.DesiredNumberScheduled)
		default:
			w.Complete = true
		}
	}
	pods, err := podsOf(ctx, c, r.namespace, sel, nil)
	if err != nil {
		return w, fmt.Errorf("%s: %w", w, err)
	}
	w.Containers = containersOf(tmpl, pods)
	return w, nil
}

// deploymentDone says whether d's rollout is complete, and if not, what
// is missing.
func deploymentDone(d *appsv1.Deployment) (bool, string) {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	switch {
	case s.ObservedGeneration < d.Generation:
		return false, "the deployment controller has not seen the latest spec"
	case s.UpdatedReplicas < want:
		return false, fmt.Sprintf("%d of %d replicas updated", s.UpdatedReplicas, want)
	case s.Replicas > s.UpdatedReplicas:
		return false, fmt.Sprintf("%d old replicas still running", s.Replicas-s.UpdatedReplicas)
	case s.AvailableReplicas < want:
		return false, fmt.Sprintf("%d of %d replicas available", s.AvailableReplicas, want)
	}
	return true, ""
}

// podsOf lists the live pods that sel matches and that carry every label
// in also (a ReplicaSet's pod-template hash); pods going or gone are left
// out.
func podsOf(ctx context.Context, c client.Reader, namespace string, sel *metav1.LabelSelector, also map[string]string) ([]corev1.Pod, error) {
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || selector.Empty() {
		return nil, fmt.Errorf("selector: %v", err)
	}
	list := &corev1.PodList{}
	if err := c.List(ctx, list, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return nil, fmt.Errorf("pods: %w", err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		match := true
		for k, v := range also {
			match = match && p.Labels[k] == v
		}
		if match {
			out = append(out, p)
		}
	}
	return out, nil
}

// containersOf pairs the template's containers with the image IDs the
// pods report for them.
func containersOf(tmpl corev1.PodTemplateSpec, pods []corev1.Pod) []Container {
	var cs []Container
	for _, ct := range tmpl.Spec.Containers {
		cs = append(cs, Container{Name: ct.Name, Image: ct.Image, Pods: map[string]string{}})
	}
	for _, p := range pods {
		for i := range cs {
			cs[i].Pods[p.Name] = "" // not started: no image yet
			for _, st := range p.Status.ContainerStatuses {
				if st.Name == cs[i].Name {
					cs[i].Pods[p.Name] = st.ImageID
				}
			}
		}
	}
	return cs
}

func orUnknown(s string) string {
	if s == "" {
		return "Unknown"
	}
	return s
}

// Observe reads every target of stage s and decides what it runs of the
// Pipeline's artifacts.
func Observe(ctx context.Context, c client.Reader, p *convergev1.Pipeline, s convergev1.PipelineStage) (Running, error) {
	var units []Unit
	for _, t := range s.Targets {
		u, err := Read(ctx, c, Target{Kind: t.Kind, Namespace: t.Namespace, Name: t.Name})
		if err != nil {
			return Running{}, fmt.Errorf("stage %s: %w", s.Name, err)
		}
		units = append(units, u)
	}
	arts := make([]promotion.Artifact, 0, len(p.Spec.Artifacts))
	for _, a := range p.Spec.Artifacts {
		arts = append(arts, promotion.Artifact{Name: a.Name, Image: a.Image})
	}
	return Decide(units, arts), nil
}
