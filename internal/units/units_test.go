package units

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	imagev1 "converge.dev/converge/internal/api/fluxcd/image/v1"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
)

func summarise(t *testing.T, file string) Summary {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	var kind struct{ Kind string }
	if err := yaml.Unmarshal(data, &kind); err != nil {
		t.Fatal(err)
	}
	decode := func(into any) {
		if err := yaml.UnmarshalStrict(data, into); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	switch kind.Kind {
	case "Application":
		o := &v1alpha1.Application{}
		decode(o)
		return FromApplication(o)
	case "ApplicationSet":
		o := &v1alpha1.ApplicationSet{}
		decode(o)
		return FromApplicationSet(o)
	case "Kustomization":
		o := &kustomizev1.Kustomization{}
		decode(o)
		return FromKustomization(o)
	case "HelmRelease":
		o := &helmv2.HelmRelease{}
		decode(o)
		return FromHelmRelease(o)
	case "Pipeline":
		o := &convergev1.Pipeline{}
		decode(o)
		return FromPipeline(o)
	case "GitRepository":
		o := &sourcev1.GitRepository{}
		decode(o)
		return FromGitRepository(o)
	case "ImageRepository":
		o := &imagev1.ImageRepository{}
		decode(o)
		return FromImageRepository(o)
	case "ImagePolicy":
		o := &imagev1.ImagePolicy{}
		decode(o)
		return FromImagePolicy(o)
	case "ImageUpdateAutomation":
		o := &imagev1.ImageUpdateAutomation{}
		decode(o)
		return FromImageUpdateAutomation(o)
	}
	t.Fatalf("%s: kind %q", file, kind.Kind)
	return Summary{}
}

func TestSummaries(t *testing.T) {
	tests := []struct{ file, want string }{
		{"application-degraded.yaml", "argocd Application argocd/orders-api-prod project=demo cluster=prod-west source=https://git.example.com/deploy.git apps/orders-api/overlays/prod rev=0123456789abcdef Synced/Degraded: Deployment orders-api: 0 of 3 replicas available"},
		{"application-error.yaml", "argocd Application argocd/broken project=default cluster=in-cluster source=https://git.example.com/deploy.git rev= Unknown/Unknown: kustomize build: missing resource"},
		{"applicationset-halted.yaml", "argocd ApplicationSet argocd/waves project=fleet cluster= source= rev= Synced/Degraded: step 1: 1 of its 1 Applications failed"},
		{"kustomization-failed.yaml", "flux Kustomization flux-system/infra project= cluster=kubeconfig:staging-kubeconfig source=GitRepository/flux-system/fleet infrastructure rev=main@sha1:aaaa OutOfSync/Degraded: kustomize build failed"},
		{"kustomization-suspended.yaml", "flux Kustomization flux-system/apps project= cluster=in-cluster source=GitRepository/shared/fleet rev=main@sha1:aaaa Synced/Suspended: Applied revision: main@sha1:aaaa"},
		{"helmrelease-progressing.yaml", "flux HelmRelease apps/podinfo project= cluster=in-cluster source=HelmRepository/apps/podinfo podinfo rev=podinfo@6.5.0 Synced/Progressing: Helm upgrade succeeded"},
		{"pipeline-rolledback.yaml", "converge Pipeline argocd/orders-api project= cluster= source=dev → staging rev= OutOfSync/Degraded: staging: rolled back in cluster: Rollout argocd/orders-api: RolloutAborted"},
		{"imagerepository-ready.yaml", "flux ImageRepository flux-system/podinfo project= cluster= source=ghcr.io/stefanprodan/podinfo rev=6.5.0 Synced/Healthy: successful scan: found 3 tags"},
		{"imagepolicy-digest.yaml", "flux ImagePolicy flux-system/podinfo project= cluster= source=ghcr.io/stefanprodan/podinfo rev=6.5.0@sha256:abcd Synced/Healthy: Latest image tag for ghcr.io/stefanprodan/podinfo resolved to 6.5.0"},
		{"imageupdateautomation-failed.yaml", "flux ImageUpdateAutomation flux-system/podinfo-update project= cluster= source=GitRepository/fleet rev=0123abcd OutOfSync/Degraded: nothing committed: apps/web.yaml:12: marker flux-system:nope: ImagePolicy flux-system/nope does not exist"},
		{"gitrepository-ready.yaml", "flux GitRepository flux-system/fleet project= cluster= source=https://git.example.com/fleet.git rev=main@sha1:cccc Synced/Healthy: stored artifact for revision main@sha1:cccc"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			s := summarise(t, tc.file)
			got := fmt.Sprintf("%s %s %s/%s project=%s cluster=%s source=%s rev=%s %s/%s: %s", s.Dialect, s.Kind, s.Namespace, s.Name,
				s.Project, s.Cluster, s.Source, s.Revision, s.Sync, s.Health, s.Message)
			if got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func row(kind, ns, name, sync, health string, lbls map[string]string) Summary {
	return Summary{Ref: Ref{Kind: kind, Namespace: ns, Name: name}, Dialect: Kinds[kind].Dialect, Sync: sync, Health: health, Labels: lbls}
}

func names(p Page) string {
	var out []string
	for _, s := range p.Items {
		out = append(out, s.Kind[:1]+":"+s.Namespace+"/"+s.Name)
	}
	return strings.Join(out, " ")
}

func TestIndexQueries(t *testing.T) {
	x := NewIndex()
	x.Put(row("Application", "argocd", "orders-dev", "Synced", "Healthy", map[string]string{"team": "orders"}))
	x.Put(row("Application", "argocd", "orders-prod", "OutOfSync", "Degraded", map[string]string{"team": "orders"}))
	x.Put(row("Application", "argocd", "billing", "Synced", "Progressing", map[string]string{"team": "billing"}))
	x.Put(row("Kustomization", "flux-system", "infra", "Synced", "Healthy", nil))
	x.Put(row("HelmRelease", "apps", "podinfo", "OutOfSync", "Degraded", nil))
	x.Put(row("HelmRelease", "argocd", "orders-dev", "Synced", "Healthy", nil)) // same name, other kind
	team, _ := labels.Parse("team=orders")
	tests := []struct {
		name string
		q    Query
		want string
		sync string // counts
	}{
		{"all, sorted by namespace, name and kind", Query{},
			"H:apps/podinfo A:argocd/billing A:argocd/orders-dev H:argocd/orders-dev A:argocd/orders-prod K:flux-system/infra", "OutOfSync=2 Synced=4"},
		{"by dialect", Query{Dialect: Flux}, "H:apps/podinfo H:argocd/orders-dev K:flux-system/infra", "OutOfSync=1 Synced=2"},
		{"by health, several", Query{Health: "Degraded,Progressing"}, "H:apps/podinfo A:argocd/billing A:argocd/orders-prod", "OutOfSync=2 Synced=1"},
		{"by label", Query{Labels: team}, "A:argocd/orders-dev A:argocd/orders-prod", "OutOfSync=1 Synced=1"},
		{"by name, any case", Query{Search: "ORDERS", Kind: "Application"}, "A:argocd/orders-dev A:argocd/orders-prod", "OutOfSync=1 Synced=1"},
		{"hidden by RBAC are not counted", Query{Allow: func(s Summary) bool { return s.Dialect == ArgoCD }}, "A:argocd/billing A:argocd/orders-dev A:argocd/orders-prod", "OutOfSync=1 Synced=2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := x.List(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(p); got != tc.want {
				t.Errorf("got %s\nwant %s", got, tc.want)
			}
			var counts []string
			for _, k := range []string{"OutOfSync", "Synced"} {
				if n := p.Counts.Sync[k]; n > 0 {
					counts = append(counts, fmt.Sprintf("%s=%d", k, n))
				}
			}
			if got := strings.Join(counts, " "); got != tc.sync {
				t.Errorf("sync counts %s, want %s", got, tc.sync)
			}
		})
	}

	// Pages of two, by cursor, cover everything once.
	var seen []string
	q := Query{Limit: 2}
	for i := 0; ; i++ {
		p, err := x.List(q)
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != 6 || len(p.Items) > 2 {
			t.Fatalf("page %d: total %d, %d items", i, p.Total, len(p.Items))
		}
		seen = append(seen, names(p))
		if p.Next == "" {
			break
		}
		q.After = p.Next
	}
	if got := strings.Join(seen, " | "); got != "H:apps/podinfo A:argocd/billing | A:argocd/orders-dev H:argocd/orders-dev | A:argocd/orders-prod K:flux-system/infra" {
		t.Errorf("pages: %s", got)
	}
	for _, bad := range []Query{{Limit: 1001}, {Limit: -1}, {After: "not-a-cursor!"}} {
		if _, err := x.List(bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestIndexWatch(t *testing.T) {
	x := NewIndex()
	events, stop := x.Watch()
	defer stop()
	a := row("Application", "argocd", "a", "Synced", "Healthy", nil)
	x.Put(a)
	a.Version = "2" // a status write that changes nothing shown
	x.Put(a)
	a.Health = "Degraded"
	x.Put(a)
	x.Delete(a.Ref)
	x.Delete(a.Ref) // gone already: nothing
	var got []string
	for len(got) < 3 {
		select {
		case e := <-events:
			got = append(got, fmt.Sprintf("%v:%s", e.Deleted, e.Unit.Health))
		case <-time.After(time.Second):
			t.Fatalf("events so far %v", got)
		}
	}
	select {
	case e := <-events:
		t.Errorf("an extra event %+v", e)
	default:
	}
	if strings.Join(got, " ") != "false:Healthy false:Degraded true:Degraded" {
		t.Errorf("events %v", got)
	}

	// A watcher that does not read is dropped, not waited for.
	slow, stopSlow := x.Watch()
	defer stopSlow()
	for i := range 300 {
		x.Put(row("Application", "argocd", fmt.Sprint(i), "Synced", "Healthy", nil))
	}
	n := 0
	for range slow {
		n++
	}
	if n != 256 {
		t.Errorf("a slow watcher got %d events before being dropped, want its buffer of 256", n)
	}
}
