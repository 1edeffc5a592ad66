package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	imagev1 "converge.dev/converge/internal/api/fluxcd/image/v1"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	"converge.dev/converge/internal/api/fluxcd/notification/v1beta3"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/notify"
)

// eventKind is a kind whose objects' status changes are events.
type eventKind struct {
	kind string
	obj  client.Object
}

// eventKinds are converge's units and sources of both dialects.
var eventKinds = []eventKind{
	{"Kustomization", &kustomizev1.Kustomization{}},
	{"HelmRelease", &helmv2.HelmRelease{}},
	{"GitRepository", &sourcev1.GitRepository{}},
	{"OCIRepository", &sourcev1.OCIRepository{}},
	{"HelmRepository", &sourcev1.HelmRepository{}},
	{"HelmChart", &sourcev1.HelmChart{}},
	{"ImageRepository", &imagev1.ImageRepository{}},
	{"ImagePolicy", &imagev1.ImagePolicy{}},
	{"ImageUpdateAutomation", &imagev1.ImageUpdateAutomation{}},
	{"Application", &v1alpha1.Application{}},
}

func eventKindNames() string {
	names := make([]string, len(eventKinds))
	for i, k := range eventKinds {
		names[i] = k.kind
	}
	return strings.Join(names, ", ")
}

// notifier turns the status changes of units and sources into Flux
// events and sends them to the Providers of the Alerts they match.
// Events are changes of what a person would be told: a Flux object's
// Ready condition (status, reason, message) or revision, an
// Application's sync, health or operation phase. The informers' first
// list sends nothing, so a restart does not repeat the past; a
// resync that changes nothing sends nothing.
type notifier struct {
	client   client.Client
	cache    cache.Cache
	gate     *gate
	recorder events.EventRecorder
	queue    chan delivery
}

type delivery struct {
	alert    types.NamespacedName
	provider *v1beta3.Provider
	event    notify.Event
}

// NeedLeaderElection is true: one replica sends each event.
func (n *notifier) NeedLeaderElection() bool { return true }

// Start watches until ctx is done.
func (n *notifier) Start(ctx context.Context) error {
	n.queue = make(chan delivery, 1000)
	for _, k := range eventKinds {
		inf, err := n.cache.GetInformer(ctx, k.obj)
		if err != nil {
			return fmt.Errorf("notifier: %s informer: %w", k.kind, err)
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			UpdateFunc: func(old, cur any) { n.changed(ctx, old, cur) },
		}); err != nil {
			return fmt.Errorf("notifier: %s handler: %w", k.kind, err)
		}
	}
	// Two senders: a slow endpoint holds up only half of the deliveries.
	for range 2 {
		go n.send(ctx)
	}
	<-ctx.Done()
	return nil
}

// changed sends the event of cur if its status moved from old's.
func (n *notifier) changed(ctx context.Context, old, cur any) {
	o, ok1 := old.(client.Object)
	c, ok2 := cur.(client.Object)
	if !ok1 || !ok2 {
		return
	}
	// Most clusters have few Alerts or none: look before decoding.
	var alerts v1beta3.AlertList
	if err := n.client.List(ctx, &alerts); err != nil || len(alerts.Items) == 0 {
		return
	}
	before, _, _ := n.eventOf(o)
	after, e, ok := n.eventOf(c)
	if !ok || before == after || !n.passes(ctx, c) {
		return
	}
	src := notify.Source{Kind: e.InvolvedObject.Kind, Namespace: c.GetNamespace(), Name: c.GetName(), Labels: c.GetLabels()}
	for i := range alerts.Items {
		a := &alerts.Items[i]
		if !notify.Matches(a.Spec, a.Namespace, src, e) {
			continue
		}
		p := &v1beta3.Provider{}
		if err := n.client.Get(ctx, types.NamespacedName{Namespace: a.Namespace, Name: a.Spec.ProviderRef.Name}, p); err != nil || p.Spec.Suspend {
			continue
		}
		d := delivery{alert: types.NamespacedName{Namespace: a.Namespace, Name: a.Name}, provider: p, event: notify.WithAlert(e, a.Spec)}
		select {
		case n.queue <- d:
		default:
			notifications.WithLabelValues(p.Spec.Type, "dropped").Inc()
		}
	}
}

// passes is the gate: an object of another shard or selector is another
// replica's to report.
func (n *notifier) passes(ctx context.Context, o client.Object) bool {
	g := n.gate
	if g == nil {
		return true
	}
	if g.selector != nil && !g.selector.Matches(labels.Set(o.GetLabels())) {
		return false
	}
	if g.ring == nil {
		return true
	}
	_, end, ok := g.ring.Enter(ctx, key(o.GetNamespace(), o.GetName()))
	if ok {
		end()
	}
	return ok
}

// send delivers queued events, retrying what may pass later.
func (n *notifier) send(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-n.queue:
			n.deliver(ctx, d)
		}
	}
}

func (n *notifier) deliver(ctx context.Context, d delivery) {
	typ := d.provider.Spec.Type
	t, err := providerTarget(ctx, n.client, d.provider)
	if err == nil {
		t.CommitStatusID = commitStatusID(d.provider, d.event)
		for attempt, wait := 0, time.Second; ; attempt, wait = attempt+1, wait*2 {
			err = notify.Send(ctx, t, d.event)
			var se *notify.SendError
			if err == nil || attempt == 3 || !errors.As(err, &se) || !se.Temporary() {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}
	switch {
	case err == nil:
		notifications.WithLabelValues(typ, "sent").Inc()
	case errors.Is(err, notify.ErrNoCommit):
		notifications.WithLabelValues(typ, "skipped").Inc()
	default:
		notifications.WithLabelValues(typ, "failed").Inc()
		ctrl.Log.WithName("notifier").Error(err, "notification failed", "alert", d.alert, "provider", d.provider.Name,
			"kind", d.event.InvolvedObject.Kind, "name", d.event.InvolvedObject.Name)
		if n.recorder != nil {
			a := &v1beta3.Alert{ObjectMeta: metav1.ObjectMeta{Namespace: d.alert.Namespace, Name: d.alert.Name}}
			a.SetGroupVersionKind(v1beta3.GroupVersion.WithKind("Alert"))
			n.recorder.Eventf(a, nil, corev1.EventTypeWarning, "NotificationFailed", "Send",
				"event of %s %s/%s to Provider %s: %s", d.event.InvolvedObject.Kind, d.event.InvolvedObject.Namespace,
				d.event.InvolvedObject.Name, d.provider.Name, err)
		}
	}
}

// eventOf is o's event and the signature of the state it reports (two
// states with one signature are one event). ok is false for an object
// with nothing to report yet.
func (n *notifier) eventOf(o client.Object) (sig string, e notify.Event, ok bool) {
	gvk, err := apiutil.GVKForObject(o, n.client.Scheme())
	if err != nil {
		return "", e, false
	}
	e = notify.Event{InvolvedObject: corev1.ObjectReference{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind, Name: o.GetName(),
		Namespace: o.GetNamespace(), UID: o.GetUID(), ResourceVersion: o.GetResourceVersion()},
		Timestamp: metav1.Now(), ReportingController: "converge", Metadata: map[string]string{}}
	if app, isApp := o.(*v1alpha1.Application); isApp {
		return applicationEvent(app, e)
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return "", e, false
	}
	ready := flux.ReadyOf(u)
	if ready == nil || ready.Status == metav1.ConditionUnknown {
		return "", e, false
	}
	rev := revisionOf(u, ready.Status == metav1.ConditionTrue)
	if rev != "" {
		e.Metadata[notify.RevisionKey(gvk.Group)] = rev
	}
	e.Severity, e.Reason, e.Message = notify.SeverityInfo, ready.Reason, ready.Message
	if ready.Status == metav1.ConditionFalse {
		e.Severity = notify.SeverityError
	}
	return strings.Join([]string{string(ready.Status), ready.Reason, ready.Message, rev}, "\x00"), e, true
}

// revisionOf is what a Flux object reports as its revision: what it
// applied (or, failed, what it tried), its artifact's, or its pick.
func revisionOf(u map[string]any, ready bool) string {
	paths := [][]string{{"status", "lastAttemptedRevision"}, {"status", "lastAppliedRevision"}}
	if ready {
		paths[0], paths[1] = paths[1], paths[0]
	}
	paths = append(paths, []string{"status", "artifact", "revision"}, []string{"status", "lastPushCommit"}, []string{"status", "latestRef", "tag"})
	for _, p := range paths {
		if s, _, _ := unstructured.NestedString(u, p...); s != "" {
			return s
		}
	}
	return ""
}

// applicationEvent reports an Application's sync, health and operation.
func applicationEvent(app *v1alpha1.Application, e notify.Event) (string, notify.Event, bool) {
	st := app.Status
	phase, opMsg := "", ""
	if op := st.OperationState; op != nil {
		phase, opMsg = string(op.Phase), op.Message
	}
	sync, health := string(st.Sync.Status), string(st.Health.Status)
	if sync == "" && health == "" && phase == "" {
		return "", e, false
	}
	e.Severity = notify.SeverityInfo
	switch {
	case phase == "Failed" || phase == "Error":
		e.Severity, e.Reason, e.Message = notify.SeverityError, "SyncFailed", opMsg
	case health == "Degraded" || health == "Missing":
		e.Severity, e.Reason, e.Message = notify.SeverityError, "Health"+health, "health: "+health+": "+st.Health.Message
	case phase == "Running" || health == "Progressing":
		e.Reason, e.Message = "Progressing", "sync "+sync+", health "+health
	case sync == "Synced":
		e.Reason, e.Message = "SyncSucceeded", "sync Synced, health "+health
	default:
		e.Reason, e.Message = "OutOfSync", "sync "+sync+", health "+health
	}
	if r := st.Sync.Revision; r != "" {
		e.Metadata[notify.RevisionKey(v1alpha1.GroupVersion.Group)] = r
	}
	return strings.Join([]string{sync, health, phase, st.Sync.Revision}, "\x00"), e, true
}
