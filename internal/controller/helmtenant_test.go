package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/dialect/flux"
)

// tenant makes the ServiceAccount Flux's multi-tenancy guide gives a
// tenant: cluster-admin, bound in its own namespace only.
func tenantAccount(t *testing.T, c client.Client, ns, name string) {
	t.Helper()
	create(t, c, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}})
	create(t, c, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name + "-reconciler", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}}})
}

// TestHelmReleaseServiceAccount: a tenant's HelmRelease acts with the
// tenant's rights. Aimed at another namespace it is forbidden and
// installs nothing there; aimed at its own it installs.
func TestHelmReleaseServiceAccount(t *testing.T) {
	c, _ := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	other := clustertest.Namespace(t)
	tenantAccount(t, c, ns, "tenant")
	url := helmRepoServer(t, "1.16.0")
	chartsRepository(t, c, ns, url)
	hr := &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "dns", Namespace: ns},
		Spec: helmv2.HelmReleaseSpec{Chart: &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{Chart: "external-dns",
			SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts"}}},
			Interval: metav1.Duration{Duration: 10 * time.Minute}, TargetNamespace: other, ServiceAccountName: "tenant",
			Install: &helmv2.Install{Remediation: &helmv2.Remediation{Retries: -1}}}}
	create(t, c, hr)
	got := waitHelmRelease(t, c, ns, "dns", "forbidden", func(h *helmv2.HelmRelease) bool {
		r := meta.FindStatusCondition(h.Status.Conditions, flux.ReadyCondition)
		return r != nil && r.Status == metav1.ConditionFalse && strings.Contains(r.Message, "forbidden")
	})
	if r := meta.FindStatusCondition(got.Status.Conditions, flux.ReadyCondition); !strings.Contains(r.Message, "system:serviceaccount:"+ns+":tenant") {
		t.Errorf("the error does not name the tenant: %s", r.Message)
	}
	if err := c.Get(ctx, types.NamespacedName{Namespace: other, Name: other + "-dns"}, &appsv1.Deployment{}); err == nil {
		t.Fatal("the tenant's release was installed in a namespace the tenant has no rights in")
	}
	if u := meta.FindStatusCondition(got.Status.Conditions, "UnsupportedFields"); u != nil {
		t.Errorf("serviceAccountName is still reported unsupported: %s", u.Message)
	}

	updateRelease(t, c, ns, "dns", func(hr *helmv2.HelmRelease) { hr.Spec.TargetNamespace = "" })
	waitHelmRelease(t, c, ns, "dns", "Ready", func(h *helmv2.HelmRelease) bool {
		return isReady(h.Status.Conditions) && h.Status.ObservedGeneration == h.Generation
	})
	if deploymentArgs(c, ns, "dns") == "" {
		t.Error("no Deployment in the tenant's own namespace")
	}
}

// TestHelmReleaseTargetChanged: changing targetNamespace installs the
// release in the new namespace and uninstalls it from the old one, as
// Flux does; before, the old release stayed installed, unowned.
func TestHelmReleaseTargetChanged(t *testing.T) {
	c, _ := setup(t)
	ctx := context.Background()
	ns, first, second := clustertest.Namespace(t), clustertest.Namespace(t), clustertest.Namespace(t)
	url := helmRepoServer(t, "1.16.0")
	chartsRepository(t, c, ns, url)
	hr := &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "dns", Namespace: ns},
		Spec: helmv2.HelmReleaseSpec{Chart: &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{Chart: "external-dns",
			SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts"}}},
			Interval: metav1.Duration{Duration: 10 * time.Minute}, TargetNamespace: first}}
	create(t, c, hr)
	waitHelmRelease(t, c, ns, "dns", "Ready", func(h *helmv2.HelmRelease) bool { return isReady(h.Status.Conditions) })
	if deploymentArgs(c, first, first+"-dns") == "" {
		t.Fatal("not installed in the first target")
	}
	updateRelease(t, c, ns, "dns", func(hr *helmv2.HelmRelease) { hr.Spec.TargetNamespace = second })
	got := waitHelmRelease(t, c, ns, "dns", "Ready in the new target", func(h *helmv2.HelmRelease) bool {
		return isReady(h.Status.Conditions) && h.Status.ObservedGeneration == h.Generation
	})
	if deploymentArgs(c, second, second+"-dns") == "" {
		t.Error("not installed in the new target")
	}
	if len(got.Status.History) == 0 || got.Status.History[0].Namespace != second {
		t.Errorf("history %+v, want the release in %s", got.Status.History, second)
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		gone := c.Get(ctx, types.NamespacedName{Namespace: first, Name: first + "-dns"}, &appsv1.Deployment{}) != nil &&
			c.Get(ctx, types.NamespacedName{Namespace: first, Name: "sh.helm.release.v1." + first + "-dns.v1"}, &corev1.Secret{}) != nil
		return gone, nil
	})
	if err != nil {
		t.Error("the release in the old target is still installed")
	}
}

// TestHelmReleaseUnchangedMessage: a release that is Ready again with
// nothing to change (here after waiting on a dependency) says which
// action made it, with that action's reason; before, it said "Helm
// unchanged succeeded" with reason UpgradeSucceeded for a first install.
func TestHelmReleaseUnchangedMessage(t *testing.T) {
	c, _ := setup(t)
	ns := clustertest.Namespace(t)
	url := helmRepoServer(t, "1.16.0")
	chartsRepository(t, c, ns, url)
	chart := &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{Chart: "external-dns",
		SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts"}}}
	create(t, c, &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: helmv2.HelmReleaseSpec{Chart: chart, Interval: metav1.Duration{Duration: 10 * time.Minute}}})
	waitHelmRelease(t, c, ns, "app", "Ready", func(h *helmv2.HelmRelease) bool { return isReady(h.Status.Conditions) })
	updateRelease(t, c, ns, "app", func(hr *helmv2.HelmRelease) { hr.Spec.DependsOn = []helmv2.DependencyReference{{Name: "base"}} })
	waitHelmRelease(t, c, ns, "app", "waiting for base", func(h *helmv2.HelmRelease) bool {
		r := meta.FindStatusCondition(h.Status.Conditions, flux.ReadyCondition)
		return r != nil && r.Reason == flux.DependencyNotReadyReason
	})
	create(t, c, &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "base", Namespace: ns},
		Spec: helmv2.HelmReleaseSpec{Chart: chart, Interval: metav1.Duration{Duration: 10 * time.Minute}}})
	got := waitHelmRelease(t, c, ns, "app", "Ready again", func(h *helmv2.HelmRelease) bool {
		return isReady(h.Status.Conditions) && h.Status.ObservedGeneration == h.Generation
	})
	r := meta.FindStatusCondition(got.Status.Conditions, flux.ReadyCondition)
	want := "Helm install succeeded for release " + ns + "/app.v1 with chart external-dns@1.16.0"
	if r.Reason != "InstallSucceeded" || r.Message != want {
		t.Errorf("Ready %s %q, want InstallSucceeded %q", r.Reason, r.Message, want)
	}
}
