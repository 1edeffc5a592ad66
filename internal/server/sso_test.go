package server_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/controller"
	"converge.dev/converge/internal/forgetest"
	"converge.dev/converge/internal/server/session"
)

// TestBrowserSSO logs in to the UI through Gitea's OpenID Connect, in
// headless Chromium: converge sends the browser to Gitea, the user logs
// in there and grants access, and comes back logged in under their
// Gitea name, with what argocd-rbac-cm gives that name (read-only here).
func TestBrowserSSO(t *testing.T) {
	ctx := browser(t)
	ns := clustertest.Namespace(t)
	c := kubeClient(t)
	f := forgetest.Start(t)
	alice := f.CreateUser(t, "alice")
	// The UI's address first: Gitea wants the exact callback URL.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	base := "http://" + addr
	var app struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	f.API(t, "POST", "/user/applications/oauth2", map[string]any{"name": "converge", "redirect_uris": []string{base + "/auth/callback"},
		"confidential_client": true}, &app)
	bg := context.Background()
	if err := c.Create(bg, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "argocd-rbac-cm"},
		Data: map[string]string{"policy.csv": "g, alice, role:readonly\n"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(bg, &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"},
		Spec: v1alpha1.ApplicationSpec{Project: "default", Source: &v1alpha1.ApplicationSource{RepoURL: "https://git.example.com/shop.git", Path: "."},
			Destination: v1alpha1.ApplicationDestination{Server: "https://kubernetes.default.svc", Namespace: ns}}}); err != nil {
		t.Fatal(err)
	}
	runController(t, ns, controller.UIOptions{Addr: addr, OIDC: &session.OIDCConfig{Issuer: strings.TrimRight(f.URL, "/"), // Gitea's issuer has no trailing '/'
		ClientID:     app.ClientID,
		ClientSecret: app.ClientSecret, RedirectURL: base + "/auth/callback"}})

	row := fmt.Sprintf(`[data-unit="Application/%s/shop"]`, ns)
	steps := []struct {
		name string
		do   chromedp.Action[chromedp.Void]
	}{
		{"open the UI", chromedp.Navigate(base + "/")},
		{"the SSO link", chromedp.WaitVisible(chromedp.CSS(`#sso`))},
		{"follow it", chromedp.Click(chromedp.CSS(`#sso`))},
		// Gitea's own login page, then its grant page.
		{"Gitea's login form", chromedp.WaitVisible(chromedp.CSS(`input[name=user_name]`))},
		{"type the name", chromedp.SendKeys(chromedp.CSS(`input[name=user_name]`), alice.Name)},
		{"type the password", chromedp.SendKeys(chromedp.CSS(`input[name=password]`), alice.Password)},
		{"log in to Gitea", chromedp.Submit(chromedp.CSS(`input[name=password]`))},
		{"Gitea's grant page", chromedp.WaitVisible(chromedp.CSS(`#authorize-app`))},
		{"grant", chromedp.Click(chromedp.CSS(`#authorize-app`))},
		{"back in converge's list", chromedp.WaitVisible(chromedp.CSS(row))},
	}
	for _, st := range steps {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		start := time.Now()
		err := chromedp.Do(sctx, st.do)
		cancel()
		t.Logf("%s: %s", st.name, time.Since(start).Round(time.Millisecond))
		if err != nil {
			png, _ := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText.slice(0, 2000)`))
			path := filepath.Join(os.TempDir(), "converge-sso-failure.png")
			_ = writeFile(path, png)
			t.Fatalf("log in through Gitea: %s: %v\npage: %s\n(screenshot %s)", st.name, err, html, path)
		}
	}
	who, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#who`)))
	if err != nil || who != alice.Name {
		t.Errorf("logged in as %q (%v), want Gitea's %q", who, err, alice.Name)
	}
	buttons, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#sync").length`))
	if err != nil || buttons != 0 {
		t.Errorf("a read-only SSO user has %d sync buttons (%v)", buttons, err)
	}
}

// TestSessionsSurviveRestart: with the session keys in a Secret, a login
// made with one controller process is good with the next (a restart, or
// another replica behind the same address).
func TestSessionsSurviveRestart(t *testing.T) {
	kubeClient(t)
	ns := clustertest.Namespace(t)
	keys := controller.UIOptions{KeySecret: types.NamespacedName{Namespace: ns, Name: "converge-ui-keys"}}
	first, stop := startController(t, ns, keys)
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := hc.Post(first+"/api/v1/session", "application/json", strings.NewReader(`{"username":"admin","password":"admin-pass"}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %v %v", resp, err)
	}
	resp.Body.Close()
	firstURL, _ := url.Parse(first)
	cookies := jar.Cookies(firstURL)
	stop()

	second := runController(t, ns, keys)
	req, _ := http.NewRequest("GET", second+"/api/v1/session", nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the first process's login with the second: %s, want 200", resp.Status)
	}
}
