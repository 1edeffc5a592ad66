package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/controller"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/server"
	"converge.dev/converge/internal/server/session"
	"converge.dev/converge/internal/source/git"
)

// TestServerApart runs the UI as `converge server` does, apart from a
// controller that reconciles only the units labelled shard=a: the server
// lists the units of every shard, and a sync asked of it is carried out
// by the controller that owns the unit.
func TestServerApart(t *testing.T) {
	c := kubeClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	ns := clustertest.Namespace(t)
	repo := gittest.NewRepo(t, t.TempDir()+"/apart.git")
	repo.Commit("two configs", map[string]string{
		"a/cm.yaml": fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: %s}\ndata: {v: a}\n", ns),
		"b/cm.yaml": fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: %s}\ndata: {v: b}\n", ns),
	})
	repo.Publish()
	for _, shard := range []string{"a", "b"} {
		if err := c.Create(ctx, &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: shard, Labels: map[string]string{"shard": shard}},
			Spec: v1alpha1.ApplicationSpec{Project: "default", Source: &v1alpha1.ApplicationSource{RepoURL: gittest.FileURL(repo.Bare), Path: shard},
				Destination: v1alpha1.ApplicationDestination{Server: "https://kubernetes.default.svc", Namespace: ns}}}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := clustertest.RESTConfig(t)
	cc, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(engine.Options{Cluster: cc, Fetcher: git.New(git.Options{CacheDir: t.TempDir()})})
	acc, err := session.NewAccount("admin-pass")
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		if err := controller.Run(ctx, cfg, controller.Options{Engine: eng, Interval: 10 * time.Minute, WatchLabelSelector: "shard=a"}); err != nil && ctx.Err() == nil {
			t.Errorf("controller: %v", err)
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		ui := controller.UIOptions{Addr: "127.0.0.1:0", RBACNamespace: ns, Accounts: map[string]session.Account{"admin": acc},
			Ready: func(a net.Addr) { ready <- "http://" + a.String() }}
		if err := controller.Serve(ctx, cfg, controller.ServeOptions{UI: ui}); err != nil && ctx.Err() == nil {
			t.Errorf("server: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; <-done })
	var base string
	select {
	case base = <-ready:
	case <-time.After(2 * time.Minute):
		t.Fatal("the server did not start")
	}
	jar, _ := cookiejar.New(nil)
	admin := &user{t: t, name: "admin", hc: &http.Client{Jar: jar, Timeout: 30 * time.Second}, base: base}
	if code, body := admin.do("POST", "/api/v1/session", map[string]string{"username": "admin", "password": "admin-pass"}); code != http.StatusOK {
		t.Fatalf("login: %d %s", code, body)
	}
	detail := func(name string) server.Detail {
		var d server.Detail
		if code, body := admin.do("GET", "/api/v1/units/Application/"+ns+"/"+name, nil); code == http.StatusOK {
			json.Unmarshal(body, &d)
		}
		return d
	}
	// Both shards' units are listed, the one no controller here owns too.
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return detail("a").Unit.Sync == "OutOfSync" && detail("b").Unit.Name == "b", nil
	})
	if err != nil {
		t.Fatalf("the server lists a: %+v, b: %+v", detail("a").Unit, detail("b").Unit)
	}
	if code, body := admin.do("POST", "/api/v1/units/Application/"+ns+"/a/sync", map[string]any{}); code != http.StatusAccepted {
		t.Fatalf("sync a: %d %s", code, body)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return detail("a").Unit.Sync == "Synced", nil
	})
	if err != nil {
		t.Fatalf("the sync asked of the server never happened: %+v", detail("a").Unit)
	}
	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "a"}, cm); err != nil || cm.Data["v"] != "a" {
		t.Errorf("ConfigMap a after the sync: %v %v", cm.Data, err)
	}
	if d := detail("b"); d.Unit.Sync == "Synced" {
		t.Errorf("b, of a shard no controller runs, is %s", d.Unit.Sync)
	}
}
