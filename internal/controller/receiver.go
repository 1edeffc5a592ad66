package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	notificationv1 "converge.dev/converge/internal/api/fluxcd/notification/v1"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/receiver"
	"converge.dev/converge/internal/webhook"
)

// HookPrefix is where Receivers' paths are served, on the webhook
// address.
const HookPrefix = "/hook/"

// ReceiverReconciler publishes each Receiver's path.
type ReceiverReconciler struct {
	Client client.Client
	// Serving is false when the controller has no webhook address: a
	// Receiver then says no call can reach it.
	Serving bool

	gate *gate
}

// SetupWithManager registers the reconciler.
func (r *ReceiverReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&notificationv1.Receiver{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})))
	_, err := r.gate.build(b, &notificationv1.Receiver{}, &notificationv1.ReceiverList{}, r)
	return err
}

// receiverToken reads the token of a Receiver's Secret.
func receiverToken(ctx context.Context, c client.Reader, rc *notificationv1.Receiver) (string, error) {
	sec := &corev1.Secret{}
	key := types.NamespacedName{Namespace: rc.Namespace, Name: rc.Spec.SecretRef.Name}
	if err := c.Get(ctx, key, sec); err != nil {
		return "", fmt.Errorf("spec.secretRef %s: %w", key, err)
	}
	tok := strings.TrimSpace(string(sec.Data["token"]))
	if tok == "" {
		return "", fmt.Errorf("spec.secretRef %s: no token key", key)
	}
	return tok, nil
}

// Reconcile publishes one Receiver's path.
func (r *ReceiverReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rc := &notificationv1.Receiver{}
	unsupported, err := getFlux(ctx, r.Client, req.NamespacedName, rc)
	if err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	orig := rc.DeepCopy()
	st := &rc.Status
	gen := rc.Generation
	flux.MarkUnsupported(&st.Conditions, gen, unsupported)
	tok, err := receiverToken(ctx, r.Client, rc)
	switch {
	case err != nil:
	case !slices.Contains(receiver.Types, rc.Spec.Type):
		err = fmt.Errorf("spec.type %q is not supported by converge (supported: %s)", rc.Spec.Type, strings.Join(receiver.Types, ", "))
	case !r.Serving:
		err = errors.New("the controller serves no webhooks: start it with --webhook-addr")
	}
	if err == nil {
		for i, res := range rc.Spec.Resources {
			if _, err = receiverGVK(r.Client, res.Kind, res.APIVersion); err != nil {
				err = fmt.Errorf("spec.resources[%d]: %w", i, err)
				break
			}
		}
	}
	if err == nil {
		st.WebhookPath = receiver.Path(tok, rc.Name, rc.Namespace)
		flux.MarkReady(&st.Conditions, gen, flux.SucceededReason, "Receiver initialized for path: "+st.WebhookPath)
	} else {
		st.WebhookPath = ""
		flux.MarkFailed(&st.Conditions, gen, "InvalidReceiver", err.Error(), false)
	}
	st.ObservedGeneration = gen
	if !equality.Semantic.DeepEqual(orig.Status, rc.Status) {
		if requeue, perr := patchStatus(ctx, r.Client, rc, orig); perr != nil || requeue {
			return ctrl.Result{Requeue: requeue}, perr
		}
	}
	if err != nil {
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}
	return ctrl.Result{}, nil
}

// receiverGVK is the kind a Receiver's resource names: a Flux kind (its
// API version optional) or an Argo CD Application.
func receiverGVK(c client.Client, kind, apiVersion string) (schema.GroupVersionKind, error) {
	for _, k := range eventKinds {
		if k.kind != kind {
			continue
		}
		gvk, err := apiutil.GVKForObject(k.obj, c.Scheme())
		if err != nil {
			return schema.GroupVersionKind{}, err
		}
		if apiVersion != "" && !strings.HasPrefix(apiVersion, gvk.Group+"/") {
			return schema.GroupVersionKind{}, fmt.Errorf("apiVersion %q: converge knows %s in %s", apiVersion, kind, gvk.Group)
		}
		return gvk, nil
	}
	return schema.GroupVersionKind{}, fmt.Errorf("kind %q: converge reconciles no such kind (it does %s)", kind, eventKindNames())
}

// receiverHandler serves Receivers' paths: a verified call asks every
// listed resource for a reconcile.
type receiverHandler struct {
	client client.Client
}

func (h *receiverHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	ctx := r.Context()
	var list notificationv1.ReceiverList
	if err := h.client.List(ctx, &list); err != nil {
		http.Error(w, "list receivers", http.StatusInternalServerError)
		return
	}
	var rc *notificationv1.Receiver
	for i := range list.Items {
		if p := list.Items[i].Status.WebhookPath; p != "" && p == r.URL.Path {
			rc = &list.Items[i]
			break
		}
	}
	if rc == nil {
		http.NotFound(w, r)
		return
	}
	if rc.Spec.Suspend {
		http.Error(w, "receiver suspended", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, webhook.MaxBody))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	tok, err := receiverToken(ctx, h.client, rc)
	if err != nil {
		http.Error(w, "receiver not ready", http.StatusServiceUnavailable)
		return
	}
	if err := receiver.Verify(rc.Spec.Type, tok, rc.Spec.Events, r.Header, body); err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, receiver.ErrUnverified) {
			code = http.StatusUnauthorized
		}
		http.Error(w, err.Error(), code)
		return
	}
	n, err := h.trigger(ctx, rc)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "reconcile requested of %d objects\n", n)
}

// trigger sets the reconcile request annotation on every object the
// Receiver lists (an Application gets Argo CD's refresh annotation).
func (h *receiverHandler) trigger(ctx context.Context, rc *notificationv1.Receiver) (int, error) {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	n := 0
	var errs []error
	for i, res := range rc.Spec.Resources {
		g, err := receiverGVK(h.client, res.Kind, res.APIVersion)
		if err != nil {
			errs = append(errs, fmt.Errorf("spec.resources[%d]: %w", i, err))
			continue
		}
		ns := orDefault(res.Namespace, rc.Namespace)
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(g.GroupVersion().WithKind(g.Kind + "List"))
		opts := []client.ListOption{client.InNamespace(ns)}
		if len(res.MatchLabels) > 0 {
			opts = append(opts, client.MatchingLabelsSelector{Selector: labels.SelectorFromSet(res.MatchLabels)})
		}
		if err := h.client.List(ctx, list, opts...); err != nil {
			errs = append(errs, fmt.Errorf("spec.resources[%d]: list %s: %w", i, g.Kind, err))
			continue
		}
		ann, val := ReconcileRequestAnnotation, now
		if g.Kind == "Application" {
			ann, val = RefreshAnnotation, "normal"
		}
		for _, o := range list.Items {
			if ok, _ := path.Match(res.Name, o.GetName()); !ok && !(res.Name == "*" && len(res.MatchLabels) > 0) {
				continue
			}
			patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+ann+`":"`+val+`"}}}`))
			if err := h.client.Patch(ctx, &o, patch); err != nil {
				errs = append(errs, fmt.Errorf("%s %s/%s: %w", g.Kind, o.GetNamespace(), o.GetName(), client.IgnoreNotFound(err)))
				continue
			}
			n++
		}
	}
	return n, errors.Join(errs...)
}
