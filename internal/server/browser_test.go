package server_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/controller"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/server/session"
	"converge.dev/converge/internal/source/git"
)

// chromium finds Debian's Chromium. In CI it must be there (.ci/run
// installs it); elsewhere the test skips, saying so loudly.
func chromium(t testing.TB) string {
	for _, p := range []string{os.Getenv("CONVERGE_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium, and CI must run the browser tests: install Debian's chromium (.ci/run does)")
	}
	t.Skip("SKIPPED: no Chromium at /usr/bin/chromium; the browser tests need Debian's chromium package (apt-get install chromium)")
	return ""
}

// chromiumOptions start Debian's Chromium headless with the flags this
// closed network needs (no background connections, no first run) and a
// fresh profile.
func chromiumOptions(tb testing.TB) []chromedp.ExecAllocatorOption {
	return append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(tb)), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true), chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(tb.TempDir()), chromedp.WindowSize(1280, 900))
}

// browser is a headless Chromium with the flags this closed network
// needs (no background connections, no first-run, a fresh profile).
func browser(t *testing.T) context.Context {
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), chromiumOptions(t)...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(alloc)
	t.Cleanup(cancel2)
	// The first action starts the browser, on ctx itself: a shorter
	// context would stop the browser with it.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	// Pages may open dialogs, which block the tab until answered: Gitea
	// built from the module proxy has no front-end assets, and its pages
	// alert about it. They are accepted.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return ctx
}

// runController runs converge's controller with its UI (on a free port
// unless ui.Addr says), with local accounts admin and viewer and the
// RBAC ConfigMap in rbacNS; it returns the UI's URL. The controller stops
// when the test ends.
func runController(t *testing.T, rbacNS string, ui controller.UIOptions) string {
	t.Helper()
	url, stop := startController(t, rbacNS, ui)
	t.Cleanup(stop)
	return url
}

// startController is runController with a stop of the caller's.
func startController(t *testing.T, rbacNS string, ui controller.UIOptions) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := clustertest.RESTConfig(t)
	cc, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(engine.Options{Cluster: cc, Fetcher: git.New(git.Options{CacheDir: t.TempDir()})})
	accounts := map[string]session.Account{}
	for name, pw := range map[string]string{"admin": "admin-pass", "viewer": "viewer-pass"} {
		if accounts[name], err = session.NewAccount(pw); err != nil {
			t.Fatal(err)
		}
	}
	ready := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if ui.Addr == "" {
			ui.Addr = "127.0.0.1:0"
		}
		ui.Accounts, ui.RBACNamespace, ui.Ready = accounts, rbacNS, func(a net.Addr) { ready <- "http://" + a.String() }
		o := controller.Options{Engine: eng, Interval: 10 * time.Minute, UI: ui}
		if err := controller.Run(ctx, cfg, o); err != nil && ctx.Err() == nil {
			t.Errorf("controller: %v", err)
		}
	}()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	select {
	case u := <-ready:
		return u, stop
	case <-done:
		t.Fatal("the controller stopped before its UI started")
	case <-time.After(2 * time.Minute):
		t.Fatal("the UI did not start")
	}
	return "", stop
}

// shot saves a screenshot: into the test's folder, and into docs/ (for
// the README) when CONVERGE_UPDATE_SCREENSHOTS is set.
func shot(t *testing.T, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, tgt) // 100: PNG; less is JPEG
		if err != nil {
			return err
		}
		dir := t.TempDir()
		if os.Getenv("CONVERGE_UPDATE_SCREENSHOTS") != "" {
			dir = filepath.Join("..", "..", "docs", "screenshots")
		}
		return os.WriteFile(filepath.Join(dir, name), png, 0o644)
	})
}

// TestBrowser drives the UI in headless Chromium: log in, see the
// units, open one, sync it and see its tree (Deployment → ReplicaSet →
// Pod); edit the Deployment by hand and see the diff; sync and see it
// heal; then, as a read-only user, find no sync button, and a sync asked
// for anyway refused.
func TestBrowser(t *testing.T) {
	ctx := browser(t)
	ns := clustertest.Namespace(t)
	c := kubeClient(t)
	bg := context.Background()
	if err := c.Create(bg, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "argocd-rbac-cm"},
		Data: map[string]string{"policy.csv": "g, viewer, role:readonly\n"}}); err != nil {
		t.Fatal(err)
	}
	repo := gittest.NewRepo(t, t.TempDir()+"/web.git")
	repo.Commit("Deploy web at one replica", map[string]string{"web/deploy.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: %s}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: example/web:1}]}
`, ns)})
	repo.Publish()
	if err := c.Create(bg, &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: v1alpha1.ApplicationSpec{Project: "default", Source: &v1alpha1.ApplicationSource{RepoURL: gittest.FileURL(repo.Bare), Path: "web"},
			Destination: v1alpha1.ApplicationDestination{Server: "https://kubernetes.default.svc", Namespace: ns}}}); err != nil {
		t.Fatal(err)
	}
	// A unit whose strings carry markup: the page must show them as text.
	if err := c.Create(bg, &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "odd"},
		Spec: v1alpha1.ApplicationSpec{Project: "default", Source: &v1alpha1.ApplicationSource{RepoURL: gittest.FileURL(repo.Bare), Path: `<img id="injected" src="x">`},
			Destination: v1alpha1.ApplicationDestination{Server: "https://kubernetes.default.svc", Namespace: ns}}}); err != nil {
		t.Fatal(err)
	}
	base := runController(t, ns, controller.UIOptions{})
	unitPath := fmt.Sprintf("/units/Application/%s/web", ns)
	row := fmt.Sprintf(`[data-unit="Application/%s/web"]`, ns)
	login := func(user, password string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.Navigate(base+"/"),
			chromedp.WaitVisible(chromedp.CSS(`#login`)),
			chromedp.SendKeys(chromedp.CSS(`#login input[name=username]`), user),
			chromedp.SendKeys(chromedp.CSS(`#login input[name=password]`), password),
			chromedp.Click(chromedp.CSS(`#login button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS(row)),
		)
	}
	// Text of a selector, once it holds want.
	waitText := func(sel, want string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
			deadline := time.Now().Add(90 * time.Second)
			var got string
			for time.Now().Before(deadline) {
				short, cancel := context.WithTimeout(ctx, 2*time.Second)
				text, err := chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible)(short, tgt)
				cancel()
				if got = text; err == nil && strings.Contains(got, want) {
					return nil
				}
				time.Sleep(300 * time.Millisecond)
			}
			return fmt.Errorf("%s never showed %q (last: %q)", sel, want, got)
		})
	}

	err := chromedp.Do(ctx,
		login("admin", "admin-pass"),
		chromedp.Click(chromedp.CSS(row+` a`)),
		chromedp.WaitVisible(chromedp.CSS(`#unit-title`)),
		chromedp.Click(chromedp.CSS(`#sync`)),
		// The page reloads itself as the unit changes.
		chromedp.WaitVisible(chromedp.CSS(`[data-node="Deployment/web"] [data-node^="ReplicaSet/web-"] [data-node^="Pod/web-"]`)),
		// The action is an Event naming the user.
		waitText(`#events`, "sync by admin"),
		// History names the commit's message and author, from Git.
		waitText(`#history`, "Deploy web at one replica"),
		waitText(`#history`, "test"),
		shot(t, "ui-unit-tree.png"),
		// Nothing the page leaves out shows as "undefined".
		chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
			text, err := chromedp.Text(chromedp.CSS(`#main`))(ctx, tgt)
			if err == nil && strings.Contains(text, "undefined") {
				return fmt.Errorf("the page shows \"undefined\": %.500s", text)
			}
			return err
		}),
	)
	if err != nil {
		t.Fatalf("log in, open and sync: %v", err)
	}

	// A person scales the Deployment by hand: the diff shows the field.
	d := &appsv1.Deployment{}
	if err := c.Get(bg, types.NamespacedName{Namespace: ns, Name: "web"}, d); err != nil {
		t.Fatal(err)
	}
	patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"replicas":3}}`))
	if err := c.Patch(bg, d, patch, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		waitText(`#diff`, "replicas"),
		waitText(`#diff`, "kubectl-edit"),
		// Its category and what policy does about it (DRIFT.md): a
		// manager no rule names is unauthorized, and reported.
		waitText(`#diff`, "unauthorized"),
		waitText(`#diff`, "report"),
		shot(t, "ui-unit-diff.png"),
		chromedp.Click(chromedp.CSS(`#sync`)),
		waitText(`#diff`, "No drift"),
		chromedp.Navigate(base+"/"),
		waitText(row, "Synced"),
		waitText(fmt.Sprintf(`[data-unit="Application/%s/odd"]`, ns), `<img id="injected"`),
		chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
			n, err := chromedp.Evaluate[int](`document.querySelectorAll("#injected").length`)(ctx, tgt)
			if err == nil && n != 0 {
				return fmt.Errorf("markup from the API became %d element(s)", n)
			}
			return err
		}),
		shot(t, "ui-list.png"),
		// Filters: another namespace hides it, its own shows it.
		chromedp.Navigate(base+"/?namespace=elsewhere&health=Healthy"),
		chromedp.WaitVisible(chromedp.CSS(`main[data-ready="true"]`)), // loaded, not just drawn
		waitText(`#counts`, "0 units"),
		chromedp.Navigate(base+"/?namespace="+ns+"&health=Healthy"),
		waitText(row, "Healthy"),
	)
	if err != nil {
		t.Fatalf("edit, diff and heal: %v", err)
	}
	if err := c.Get(bg, types.NamespacedName{Namespace: ns, Name: "web"}, d); err != nil || *d.Spec.Replicas != 1 {
		t.Errorf("after the sync the Deployment has %v replicas (%v), want Git's 1", d.Spec.Replicas, err)
	}

	// A read-only user sees no sync button, and a sync asked for anyway
	// (from the page's own script) is refused.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#logout`)),
		chromedp.WaitVisible(chromedp.CSS(`#login`)),
		login("viewer", "viewer-pass"),
		chromedp.Navigate(base+unitPath),
		chromedp.WaitVisible(chromedp.CSS(`#unit-title`)),
	)
	if err != nil {
		t.Fatalf("as the read-only user: %v", err)
	}
	buttons, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#sync").length`))
	if err != nil {
		t.Fatal(err)
	}
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`fetch("/api/v1/units/Application/%s/web/sync", {method: "POST",
		headers: {"X-CSRF-Token": (document.cookie.match(/converge_csrf=([^;]*)/) || [])[1] || ""}}).then(r => r.status)`, ns), chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if buttons != 0 {
		t.Errorf("the read-only user has %d sync buttons", buttons)
	}
	if status != 403 {
		t.Errorf("the read-only user's sync: %d, want 403", status)
	}
}

func writeFile(name string, data []byte) error { return os.WriteFile(name, data, 0o644) }
