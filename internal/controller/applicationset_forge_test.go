package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/forgetest"
)

// refreshSet asks set ns/name to generate again, as Argo CD's refresh
// annotation does, once the last refresh has been taken (a refresh
// still pending would absorb this one).
func refreshSet(t *testing.T, c client.Client, ns, name string) {
	t.Helper()
	waitSet(t, c, ns, name, "the last refresh taken", func(s *v1alpha1.ApplicationSet, _ []v1alpha1.Application) bool {
		return s.Annotations[AppSetRefreshAnnotation] == ""
	})
	set := &v1alpha1.ApplicationSet{}
	set.Namespace, set.Name = ns, name
	if err := c.Patch(context.Background(), set, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+AppSetRefreshAnnotation+`":"true"}}}`))); err != nil {
		t.Fatal(err)
	}
}

// TestApplicationSetPullRequestPreviews: Argo CD's pullRequest generator
// on a real Gitea. Opening a pull request makes a preview Application at
// its head commit; a push to it moves the preview; closing it removes the
// preview and, through the resources finalizer, what it deployed.
func TestApplicationSetPullRequestPreviews(t *testing.T) {
	c, _ := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	f := forgetest.Start(t)
	repo := f.CreateRepo(t, "shop")
	repo.Push("main", map[string]string{"preview/cm.yaml": configMapYAML("shop", "main")})
	f.API(t, "POST", "/repos/"+f.User+"/shop/branches", map[string]string{"new_branch_name": "feature-cart", "old_branch_name": "main"}, nil)
	head := repo.PushBranch("feature-cart", "cart", map[string]string{"preview/cm.yaml": configMapYAML("shop", "cart-1")})
	var pr struct {
		Number int `json:"number"`
	}
	f.API(t, "POST", "/repos/"+f.User+"/shop/pulls", map[string]string{"base": "main", "head": "feature-cart", "title": "Add a cart"}, &pr)
	create(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "gitea-token", Namespace: ns}, StringData: map[string]string{"token": f.Token}})
	appSet(t, c, fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: previews
  namespace: %[1]s
spec:
  generators:
  - pullRequest:
      gitea:
        owner: %[2]s
        repo: shop
        api: %[3]s
        tokenRef: {secretName: gitea-token, key: token}
      requeueAfterSeconds: 1800
  template:
    metadata:
      name: 'shop-{{branch_slug}}-{{number}}'
      finalizers: [resources-finalizer.argocd.argoproj.io]
    spec:
      project: default
      source:
        repoURL: %[4]s
        targetRevision: '{{head_sha}}'
        path: preview
      destination:
        server: https://kubernetes.default.svc
        namespace: %[1]s
      syncPolicy: {automated: {prune: true}}
`, ns, f.User, f.URL, repo.CloneURL))
	name := fmt.Sprintf("shop-feature-cart-%d", pr.Number)
	waitPreview := func(what, value string) {
		t.Helper()
		_, apps := waitSet(t, c, ns, "previews", what, func(_ *v1alpha1.ApplicationSet, apps []v1alpha1.Application) bool {
			return len(apps) == 1 && apps[0].Name == name && apps[0].Status.Sync.Status == "Synced" && configMapValue(c, ns, "shop") == value
		})
		if got := apps[0].Spec.Source.TargetRevision; got != strings.TrimSpace(head) {
			t.Errorf("the preview's revision %s, want the head %s", got, head)
		}
	}
	waitPreview("a preview of the pull request", "cart-1")

	refresh := func() { refreshSet(t, c, ns, "previews") }
	head = repo.PushBranch("feature-cart", "cart 2", map[string]string{"preview/cm.yaml": configMapYAML("shop", "cart-2")})
	refresh()
	waitPreview("the preview at the new head", "cart-2")

	// A round without a refresh (here: an annotation changed) reuses the
	// listing for requeueAfterSeconds: a pull request opened meanwhile
	// waits for the next listing, as with Argo CD's polling.
	f.API(t, "POST", "/repos/"+f.User+"/shop/branches", map[string]string{"new_branch_name": "feature-late", "old_branch_name": "main"}, nil)
	var late struct {
		Number int `json:"number"`
	}
	f.API(t, "POST", "/repos/"+f.User+"/shop/pulls", map[string]string{"base": "main", "head": "feature-late", "title": "Later"}, &late)
	set := &v1alpha1.ApplicationSet{}
	set.Namespace, set.Name = ns, "previews"
	if err := c.Patch(ctx, set, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"touched":"1"}}}`))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if _, apps := waitSet(t, c, ns, "previews", "status", func(*v1alpha1.ApplicationSet, []v1alpha1.Application) bool { return true }); len(apps) != 1 {
		t.Errorf("a round without refresh listed the forge again: %d previews", len(apps))
	}
	refresh()
	waitSet(t, c, ns, "previews", "the late preview", func(_ *v1alpha1.ApplicationSet, apps []v1alpha1.Application) bool { return len(apps) == 2 })
	// Closed one at a time: two of two at once would be a mass deletion,
	// held by the guard.
	f.API(t, "PATCH", fmt.Sprintf("/repos/%s/shop/pulls/%d", f.User, late.Number), map[string]string{"state": "closed"}, nil)
	refresh()
	waitSet(t, c, ns, "previews", "the late preview gone", func(_ *v1alpha1.ApplicationSet, apps []v1alpha1.Application) bool { return len(apps) == 1 })

	f.API(t, "PATCH", fmt.Sprintf("/repos/%s/shop/pulls/%d", f.User, pr.Number), map[string]string{"state": "closed"}, nil)
	refresh()
	waitSet(t, c, ns, "previews", "the preview gone", func(_ *v1alpha1.ApplicationSet, apps []v1alpha1.Application) bool {
		return len(apps) == 0 && configMapValue(c, ns, "shop") == ""
	})
}

// TestApplicationSetSCMProvider: Argo CD's scmProvider generator, as its
// documentation writes it for Gitea, on a real Gitea organization. Only
// repositories the filters pass get an Application, cloned over the
// HTTPS URL the forge gives; a repository that gains the path is picked
// up on the next listing.
func TestApplicationSetSCMProvider(t *testing.T) {
	c, _ := setup(t)
	ns := clustertest.Namespace(t)
	f := forgetest.Start(t)
	for _, name := range []string{"svc-a", "svc-b", "docs"} {
		f.CreateOrgRepo(t, "platform", name).Push("first", map[string]string{"deploy/cm.yaml": configMapYAML(name, "from-"+name)})
	}
	late := f.CreateOrgRepo(t, "platform", "svc-c")
	late.Push("no deploy folder yet", map[string]string{"README.md": "soon\n"})
	f.CreateOrgRepo(t, "platform", "svc-empty") // never pushed: no branch to deploy
	create(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "gitea-token", Namespace: ns}, StringData: map[string]string{"token": f.Token}})
	appSet(t, c, fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: myapps
  namespace: %[1]s
spec:
  generators:
  - scmProvider:
      cloneProtocol: https
      gitea:
        owner: platform
        api: %[2]s
        tokenRef:
          secretName: gitea-token
          key: token
      filters:
      - repositoryMatch: ^svc-
        pathsExist: [deploy]
  template:
    metadata:
      name: '{{ repository }}'
    spec:
      source:
        repoURL: '{{ url }}'
        targetRevision: '{{ branch }}'
        path: deploy/
      project: default
      destination:
        server: https://kubernetes.default.svc
        namespace: %[1]s
      syncPolicy: {automated: {}}
`, ns, f.URL))
	deployed := func(names ...string) func(*v1alpha1.ApplicationSet, []v1alpha1.Application) bool {
		return func(_ *v1alpha1.ApplicationSet, apps []v1alpha1.Application) bool {
			if len(apps) != len(names) {
				return false
			}
			for i, a := range apps {
				if a.Name != names[i] || a.Status.Sync.Status != "Synced" || configMapValue(c, ns, names[i]) != "from-"+names[i] {
					return false
				}
			}
			return true
		}
	}
	_, apps := waitSet(t, c, ns, "myapps", "svc-a and svc-b deployed, not docs or svc-c", deployed("svc-a", "svc-b"))
	if got, want := apps[0].Spec.Source.RepoURL, f.URL+"platform/svc-a"; got != want {
		t.Errorf("repoURL %s, want the forge's HTTPS URL %s", got, want)
	}
	if configMapValue(c, ns, "docs") != "" {
		t.Error("docs was deployed: repositoryMatch did not filter it")
	}

	late.Push("deploy it", map[string]string{"deploy/cm.yaml": configMapYAML("svc-c", "from-svc-c")})
	refreshSet(t, c, ns, "myapps")
	waitSet(t, c, ns, "myapps", "svc-c deployed once it has deploy/", deployed("svc-a", "svc-b", "svc-c"))
}
