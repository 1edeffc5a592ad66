package cli_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/cli"
	"converge.dev/converge/internal/localcluster"
)

// TestUpForge runs `converge up --forge` as a newcomer would, waits for
// the demo Pipeline to see all three stages run the demo digest, then,
// as CI, moves dev to a new digest with its evidence (recorded by
// `converge evidence add`) and watches the staging promotion's pull
// request open on the local forge.
func TestUpForge(t *testing.T) {
	// up runs a controller, and controller-runtime allows one controller
	// of a name per process: TestUp has run one here already. The test
	// runs in a process of its own.
	if os.Getenv("CONVERGE_UPFORGE_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestUpForge$", "-test.v", "-test.timeout=20m")
		cmd.Env = append(os.Environ(), "CONVERGE_UPFORGE_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(string(out), "--- PASS: TestUpForge") {
			t.Fatalf("the child process did not pass TestUpForge:\n%s", out)
		}
		return
	}
	home := t.TempDir()
	t.Setenv(localcluster.HomeEnv, home)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- cli.Run(ctx, []string{"up", "--forge", "--name", "upforge"}, &bytes.Buffer{}, &stderr) }()

	kubeconfig := filepath.Join(home, "clusters", "upforge", "kubeconfig")
	var dyn dynamic.Interface
	var pipeline *unstructured.Unstructured
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, 12*time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case code := <-done:
			t.Fatalf("up exited early with %d:\n%s", code, stderr.String())
		default:
		}
		if dyn == nil {
			cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return false, nil
			}
			dyn = dynamic.NewForConfigOrDie(cfg)
		}
		p, err := dyn.Resource(convergev1.GroupVersion.WithResource("pipelines")).Namespace("argocd").Get(ctx, "orders-api", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		pipeline = p
		stages, _, _ := unstructured.NestedSlice(p.Object, "status", "stages")
		if len(stages) != 3 {
			return false, nil
		}
		for _, s := range stages {
			m := s.(map[string]any)
			if m["healthy"] != true {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("the demo pipeline never saw its stages healthy: %v\n%v\n%s", err, pipeline, stderr.String())
	}
	m := regexp.MustCompile(`demo repository: (http://\S+)`).FindStringSubmatch(stderr.String())
	if m == nil || !strings.Contains(stderr.String(), "converge promote status orders-api -n argocd") {
		t.Fatalf("up did not name its forge repository and the promotion commands:\n%s", stderr.String())
	}
	cfg, _ := clientcmd.BuildConfigFromFlags("", kubeconfig)
	sec, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Secrets("argocd").Get(context.Background(), "forge-token", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// CI: a new build of orders-api, its evidence, and dev moved to it.
	sum := sha256.Sum256([]byte("orders-api 1.5.0"))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	work := t.TempDir()
	push := strings.Replace(m[1], "http://", "http://"+string(sec.Data["username"])+":"+string(sec.Data["token"])+"@", 1)
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", args[0], err, strings.ReplaceAll(string(out), string(sec.Data["token"]), "***"))
		}
	}
	git("clone", "-q", push, ".")
	file := filepath.Join(work, "apps/orders-api/overlays/dev/kustomization.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	moved := regexp.MustCompile(`digest: sha256:[0-9a-f]{64}`).ReplaceAllString(string(data), "digest: "+digest)
	moved = strings.Replace(moved, `newTag: "1.4.2"`, `newTag: "1.5.0"`, 1)
	if err := os.WriteFile(file, []byte(moved), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"evidence", "add", "--dir", work, "--digest", digest, "--type", "build", "--result", "passed", "--uri", "https://ci.example.com/1"},
		{"evidence", "add", "--dir", work, "--digest", digest, "--type", "scan", "--critical", "0", "--uri", "https://scan.example.com/1"},
	} {
		var eout, eerr bytes.Buffer
		if code := cli.Run(context.Background(), args, &eout, &eerr); code != 0 {
			t.Fatalf("converge %s: %d %s", strings.Join(args, " "), code, eerr.String())
		}
	}
	git("add", "-A")
	git("-c", "user.name=ci", "-c", "user.email=ci@example.com", "commit", "-qm", "ci: orders-api 1.5.0 and its evidence")
	git("push", "-q", "origin", "main")

	// The demo polls Git every 30s; the staging pull request opens once
	// dev runs the new digest.
	err = wait.PollUntilContextTimeout(context.Background(), time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := dyn.Resource(convergev1.GroupVersion.WithResource("promotions")).Namespace("argocd").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, p := range list.Items {
			stage, _, _ := unstructured.NestedString(p.Object, "spec", "stage")
			url, _, _ := unstructured.NestedString(p.Object, "status", "pr", "url")
			if stage == "staging" && url != "" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no staging pull request opened: %v\n%s", err, stderr.String())
	}
	cancel()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("up did not stop within a minute of Ctrl-C")
	}
}

// syncBuffer is a buffer written by up's goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
