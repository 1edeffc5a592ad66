package cli_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"converge.dev/converge/internal/cli"
	"converge.dev/converge/internal/controlplane"
	"converge.dev/converge/internal/forgetest"
	"converge.dev/converge/internal/localcluster"
	"converge.dev/converge/internal/render/helm"
)

func TestMain(m *testing.M) {
	// Helm renders run in a child process of this binary, as they do in
	// the converge binary.
	helm.ServeChild()
	// testscript re-runs this binary as the "converge" command; only the
	// parent process runs tests.
	testscript.Main(m, map[string]func(){
		"converge": func() {
			// As cmd/converge: an interrupt ends the command's context.
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
			stop()
			os.Exit(code)
		},
	})
}

// TestScripts runs the CLI's script tests in testdata/script. Each script
// has its own CONVERGE_HOME; clusters it leaves behind are deleted after it.
func TestScripts(t *testing.T) {
	// Build (or find) the control plane here, once, with progress on
	// stderr; scripts then find it in the shared cache.
	if _, err := controlplane.Ensure(context.Background(), controlplane.Options{Progress: os.Stderr}); err != nil {
		t.Fatal(err)
	}
	cacheDir, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	// One cluster with a node for the scripts that sync; each script works
	// in namespaces of its own.
	c, err := localcluster.Start(context.Background(), localcluster.Options{
		Name: "scripts", Dir: t.TempDir(), Nodes: 1, WaitNodes: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	// A real forge for the scripts that open pull requests.
	forge = forgetest.Start(t)
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("testdata", "script"),
		Setup: func(env *testscript.Env) error {
			home := filepath.Join(env.WorkDir, "home")
			env.Setenv(localcluster.HomeEnv, home)
			env.Setenv("XDG_CACHE_HOME", cacheDir)
			env.Setenv("KUBECONFIG", c.Kubeconfig())
			env.Setenv("FORGE_USER", forge.User)
			env.Setenv("FORGE_TOKEN", forge.Token)
			env.Defer(func() { deleteAll(home) })
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"no-cluster-processes": noClusterProcesses,
			"gitcommit":            gitCommit,
			"kubectl-set-image":    kubectlSetImage,
			"forge-push":           forgePush,
			"forge-pulls":          forgePulls,
			"forge-file":           forgeFile,
		},
	})
}

// deleteAll stops whatever clusters a failed script left running.
func deleteAll(home string) {
	store := localcluster.Store{Dir: home}
	all, _ := store.List(context.Background())
	for _, c := range all {
		store.Delete(context.Background(), c.Name)
	}
}

// noClusterProcesses fails if any process runs a control plane whose
// folder is under $CONVERGE_HOME.
func noClusterProcesses(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: no-cluster-processes")
	}
	home := ts.Getenv(localcluster.HomeEnv)
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		line := strings.ReplaceAll(string(cmdline), "\x00", " ")
		if strings.Contains(line, controlplane.BinaryName) && strings.Contains(line, home) {
			stat, _ := os.ReadFile(strings.TrimSuffix(p, "cmdline") + "stat")
			ts.Fatalf("process left: %s (%s)", line, fmt.Sprint(strings.Fields(string(stat))[2:3]))
		}
	}
}
