package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/localcluster"
	"converge.dev/converge/internal/plan"
)

// killToken is the Git server's password, in the Application's repoURL.
const killToken = "ghp_KILLEDt0kenN0tForDisplay"

// controllerProcess is one `converge controller` process: this test
// binary started as "converge", as testscript does.
type controllerProcess struct {
	cmd *exec.Cmd
	log *bytes.Buffer
}

// TestControllerKilled runs the real `converge controller` as a process
// and kills it with SIGKILL ten times, each in the middle of the sync of
// a new revision (after 10 to 136 of its 150 updates were seen). A last
// process then syncs the final revision. Exactly the final revision's
// objects must be left, the status must say so, the Application's
// deletion must remove them all, and the token in the repository URL must
// be in no log, status, Event, inventory or cache file.
func TestControllerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of its own")
	}
	ctx := context.Background()
	lc, err := localcluster.Start(ctx, localcluster.Options{Name: "killed", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lc.Stop(context.Background()) })
	cfg, err := lc.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	apps := dynamic.NewForConfigOrDie(cfg).Resource(v1alpha1.GroupVersion.WithResource("applications")).Namespace("argocd")

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "converge")
	if err := os.Symlink(exe, bin); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	env := append(os.Environ(), "XDG_CACHE_HOME="+cache, "KUBECONFIG="+lc.Kubeconfig())
	var logs []*bytes.Buffer
	start := func() controllerProcess {
		t.Helper()
		var log bytes.Buffer
		cmd := exec.Command(bin, "controller")
		cmd.Env, cmd.Stdout, cmd.Stderr = env, &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		logs = append(logs, &log)
		return controllerProcess{cmd, &log}
	}
	kubectl := func(stdin string, args ...string) {
		t.Helper()
		cmd := exec.Command("kubectl", args...)
		cmd.Env, cmd.Stdin = env, strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	install := exec.Command(bin, "install")
	install.Env = env
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("converge install: %v\n%s", err, out)
	}

	srv := gittest.NewServer(t, "converge", killToken)
	repo, url := srv.NewRepo(t, "org/killed.git")
	url = strings.Replace(url, "://", "://converge:"+killToken+"@", 1)
	revision := func(v string, n int, extra bool) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%03d}\ndata: {v: %q}\n", i, v)
		}
		for i := 0; extra && i < 20; i++ {
			fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x-%s-%02d}\ndata: {v: %q}\n", v, i, v)
		}
		return repo.Commit(v, map[string]string{"app/all.yaml": b.String()}).String()
	}
	revision("r0", 150, true)
	repo.Publish()

	kubectl("", "create", "namespace", "argocd")
	kubectl("", "create", "namespace", "killed")
	kubectl(fmt.Sprintf(`
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: killed, namespace: argocd}
spec:
  sourceRepos: ["*"]
  destinations: [{server: "https://kubernetes.default.svc", namespace: killed}]
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: killed
  namespace: argocd
  finalizers: [resources-finalizer.argocd.argoproj.io]
  annotations: {converge.dev/prune-budget: "0"}
spec:
  project: killed
  source: {repoURL: %q, targetRevision: main, path: app}
  destination: {server: "https://kubernetes.default.svc", namespace: killed}
  syncPolicy: {automated: {prune: true, selfHeal: true}}
`, url), "apply", "-f", "-")

	configMaps := func() map[string]string {
		list, err := cs.CoreV1().ConfigMaps("killed").List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil
		}
		out := map[string]string{}
		for _, cm := range list.Items {
			if cm.Annotations[plan.OwnerAnnotation] != "" {
				out[cm.Name] = cm.Data["v"]
			}
		}
		return out
	}
	status := func() (sync, health, rev string) {
		a, err := apps.Get(ctx, "killed", metav1.GetOptions{})
		if err != nil {
			return "", "", ""
		}
		sync, _, _ = unstructured.NestedString(a.Object, "status", "sync", "status")
		health, _, _ = unstructured.NestedString(a.Object, "status", "health", "status")
		rev, _, _ = unstructured.NestedString(a.Object, "status", "sync", "revision")
		return sync, health, rev
	}
	refresh := func() {
		t.Helper()
		kubectl("", "-n", "argocd", "annotate", "--overwrite", "application", "killed", "argocd.argoproj.io/refresh=hard")
	}
	poll := func(what string, timeout time.Duration, cond func() bool) {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, timeout, true, func(context.Context) (bool, error) { return cond(), nil })
		if err != nil {
			s, h, r := status()
			t.Fatalf("waiting for %s: %v (Application %s/%s at %.12s)\nlast controller log:\n%s", what, err, s, h, r, tail(logs))
		}
	}

	// Revision r0 lands whole first.
	p := start()
	poll("r0 synced", 2*time.Minute, func() bool { s, h, _ := status(); return s == "Synced" && h == "Healthy" && len(configMaps()) == 170 })
	p.kill(t)

	for i := 1; i <= 10; i++ {
		v := fmt.Sprintf("r%d", i)
		revision(v, 150, true)
		repo.Publish()
		at := 10 + (i-1)*14 // of 150 updates
		p := start()
		refresh()
		poll(fmt.Sprintf("%d ConfigMaps at %s", at, v), 2*time.Minute, func() bool {
			n := 0
			for _, got := range configMaps() {
				if got == v {
					n++
				}
			}
			return n >= at
		})
		p.kill(t)
		t.Logf("killed during the sync of %s after %d updates seen; %d owned ConfigMaps", v, at, len(configMaps()))
	}

	final := revision("final", 30, false)
	repo.Publish()
	p = start()
	refresh()
	poll("final synced", 3*time.Minute, func() bool {
		s, h, r := status()
		return s == "Synced" && h == "Healthy" && r == final
	})
	got := configMaps()
	var names []string
	for name, v := range got {
		if v != "final" {
			t.Errorf("ConfigMap %s is at %s, not final", name, v)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	if len(names) != 30 || names[0] != "cm-000" || names[29] != "cm-029" {
		t.Errorf("%d owned ConfigMaps after the final sync, want cm-000 to cm-029: %v", len(names), names)
	}

	if a, err := apps.Get(ctx, "killed", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else if data, _ := json.Marshal(a.Object["status"]); bytes.Contains(data, []byte(killToken)) {
		i := bytes.Index(data, []byte(killToken))
		t.Errorf("the Application's status shows the token: ...%s...", data[max(0, i-200):i])
	}

	// Deleting the Application with its resources finalizer removes
	// everything it ever applied.
	kubectl("", "-n", "argocd", "delete", "application", "killed", "--wait=false")
	poll("the Application gone", 2*time.Minute, func() bool {
		_, err := apps.Get(ctx, "killed", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if left := configMaps(); len(left) != 0 {
		t.Errorf("%d owned ConfigMaps left after the Application was deleted: %v", len(left), left)
	}
	p.kill(t)

	scanFor(t, killToken, cs, cache, logs)
}

func (p controllerProcess) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
}

// tail is the end of the newest controller log.
func tail(logs []*bytes.Buffer) string {
	if len(logs) == 0 {
		return ""
	}
	s := logs[len(logs)-1].String()
	return s[max(0, len(s)-3000):]
}

// scanFor fails the test if token is in any controller log, any Event
// or converge object in the cluster, or any file of the cache.
func scanFor(t *testing.T, token string, cs kubernetes.Interface, cache string, logs []*bytes.Buffer) {
	t.Helper()
	ctx := context.Background()
	for i, l := range logs {
		if l.Len() == 0 {
			t.Errorf("controller %d logged nothing: the scan would prove nothing", i)
		}
		if strings.Contains(l.String(), token) {
			t.Errorf("controller %d's log shows the token", i)
		}
	}
	events, err := cs.CoreV1().Events("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if strings.Contains(e.Message, token) {
			t.Errorf("Event %s/%s shows the token: %s", e.Namespace, e.Name, e.Message)
		}
	}
	for _, ns := range []string{cluster.InventoryNamespace, "killed"} {
		cms, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, cm := range cms.Items {
			if data, _ := json.Marshal(cm); bytes.Contains(data, []byte(token)) {
				t.Errorf("ConfigMap %s/%s holds the token", ns, cm.Name)
			}
		}
	}
	files := 0
	filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		files++
		if data, err := os.ReadFile(p); err == nil && bytes.Contains(data, []byte(token)) {
			t.Errorf("cache file %s holds the token", p)
		}
		return nil
	})
	if files == 0 {
		t.Error("the cache is empty: the scan would prove nothing")
	}
}
