package controller

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/api/fluxcd/notification/v1beta3"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/notify"
)

// providerTarget resolves a Provider and its Secrets. The Secret's
// address, proxy and headers keys win over the spec, as in Flux.
func providerTarget(ctx context.Context, c client.Reader, p *v1beta3.Provider) (notify.Target, error) {
	t := notify.Target{Type: p.Spec.Type, Address: p.Spec.Address, Channel: p.Spec.Channel, Username: p.Spec.Username, Proxy: p.Spec.Proxy}
	if p.Spec.Timeout != nil {
		t.Timeout = p.Spec.Timeout.Duration
	}
	if ref := p.Spec.SecretRef; ref != nil {
		sec := &corev1.Secret{}
		key := types.NamespacedName{Namespace: p.Namespace, Name: ref.Name}
		if err := c.Get(ctx, key, sec); err != nil {
			return t, fmt.Errorf("spec.secretRef %s: %w", key, err)
		}
		d := sec.Data
		t.Token = strings.TrimSpace(string(d["token"]))
		if a := strings.TrimSpace(string(d["address"])); a != "" {
			t.Address = a
		}
		if pr := strings.TrimSpace(string(d["proxy"])); pr != "" {
			t.Proxy = pr
		}
		if h, ok := d["headers"]; ok {
			if err := yaml.Unmarshal(h, &t.Headers); err != nil {
				// The YAML error could quote the Secret.
				return t, fmt.Errorf("spec.secretRef %s: headers is not a YAML map of strings", key)
			}
		}
	}
	if ref := p.Spec.CertSecretRef; ref != nil {
		sec := &corev1.Secret{}
		key := types.NamespacedName{Namespace: p.Namespace, Name: ref.Name}
		if err := c.Get(ctx, key, sec); err != nil {
			return t, fmt.Errorf("spec.certSecretRef %s: %w", key, err)
		}
		if t.CA = sec.Data["ca.crt"]; len(t.CA) == 0 {
			if t.CA = sec.Data["caFile"]; len(t.CA) == 0 {
				return t, fmt.Errorf("spec.certSecretRef %s: no ca.crt key", key)
			}
		}
	}
	return t, nil
}

// ProviderReconciler says whether each Provider can be used: a known
// type, its Secrets present, a usable address. Events are sent by the
// notifier, which resolves the Provider again each time.
type ProviderReconciler struct {
	Client client.Client

	gate *gate
}

// SetupWithManager registers the reconciler.
func (r *ProviderReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1beta3.Provider{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})))
	_, err := r.gate.build(b, &v1beta3.Provider{}, &v1beta3.ProviderList{}, r)
	return err
}

// Reconcile checks one Provider.
func (r *ProviderReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := &v1beta3.Provider{}
	unsupported, err := getFlux(ctx, r.Client, req.NamespacedName, p)
	if err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	orig := p.DeepCopy()
	flux.MarkUnsupported(&p.Status.Conditions, p.Generation, unsupported)
	t, err := providerTarget(ctx, r.Client, p)
	if err == nil {
		err = notify.Check(t)
	}
	if err == nil {
		flux.MarkReady(&p.Status.Conditions, p.Generation, flux.SucceededReason, "Provider is usable")
	} else {
		flux.MarkFailed(&p.Status.Conditions, p.Generation, "InvalidProvider", err.Error(), false)
	}
	p.Status.ObservedGeneration = p.Generation
	if !equality.Semantic.DeepEqual(orig.Status, p.Status) {
		if requeue, perr := patchStatus(ctx, r.Client, p, orig); perr != nil || requeue {
			return ctrl.Result{Requeue: requeue}, perr
		}
	}
	if err != nil {
		// A Secret created later is seen within a minute.
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}
	return ctrl.Result{}, nil
}

// AlertReconciler says whether each Alert can be used: its Provider
// exists, its expressions compile, its sources are kinds converge
// reports events of.
type AlertReconciler struct {
	Client client.Client

	gate *gate
}

// SetupWithManager registers the reconciler.
func (r *AlertReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1beta3.Alert{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})))
	_, err := r.gate.build(b, &v1beta3.Alert{}, &v1beta3.AlertList{}, r)
	return err
}

// Reconcile checks one Alert.
func (r *AlertReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	a := &v1beta3.Alert{}
	unsupported, err := getFlux(ctx, r.Client, req.NamespacedName, a)
	if err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	orig := a.DeepCopy()
	flux.MarkUnsupported(&a.Status.Conditions, a.Generation, unsupported)
	err = checkAlert(ctx, r.Client, a)
	if err == nil {
		flux.MarkReady(&a.Status.Conditions, a.Generation, flux.SucceededReason, "Alert is usable")
	} else {
		flux.MarkFailed(&a.Status.Conditions, a.Generation, "InvalidAlert", err.Error(), false)
	}
	a.Status.ObservedGeneration = a.Generation
	if !equality.Semantic.DeepEqual(orig.Status, a.Status) {
		if requeue, perr := patchStatus(ctx, r.Client, a, orig); perr != nil || requeue {
			return ctrl.Result{Requeue: requeue}, perr
		}
	}
	if err != nil {
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}
	return ctrl.Result{}, nil
}

func checkAlert(ctx context.Context, c client.Reader, a *v1beta3.Alert) error {
	if s := a.Spec.EventSeverity; s != "" && s != notify.SeverityInfo && s != notify.SeverityError {
		return fmt.Errorf("spec.eventSeverity %q: want info or error", s)
	}
	for field, list := range map[string][]string{"inclusionList": a.Spec.InclusionList, "exclusionList": a.Spec.ExclusionList} {
		for i, x := range list {
			if _, err := regexp.Compile(x); err != nil {
				return fmt.Errorf("spec.%s[%d] %q: %w", field, i, x, err)
			}
		}
	}
	if len(a.Spec.EventSources) == 0 {
		return fmt.Errorf("spec.eventSources: at least one is required")
	}
	for i, s := range a.Spec.EventSources {
		if !slices.ContainsFunc(eventKinds, func(k eventKind) bool { return k.kind == s.Kind }) {
			return fmt.Errorf("spec.eventSources[%d].kind %q: converge reports no events of it (it does of %s)", i, s.Kind, eventKindNames())
		}
	}
	key := types.NamespacedName{Namespace: a.Namespace, Name: a.Spec.ProviderRef.Name}
	if err := c.Get(ctx, key, &v1beta3.Provider{}); err != nil {
		return fmt.Errorf("spec.providerRef: Provider %s: %w", key, err)
	}
	return nil
}

// commitStatusID is Flux's default commit status key: kind/name and the
// Provider's UID's first part, so that two clusters reporting the same
// Kustomization on one commit keep two statuses.
func commitStatusID(p *v1beta3.Provider, e notify.Event) string {
	uid, _, _ := strings.Cut(string(p.UID), "-")
	return strings.ToLower(e.InvolvedObject.Kind + "/" + e.InvolvedObject.Name + "/" + uid)
}
