package localcluster_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"converge.dev/converge/internal/localcluster"
)

const childEnv = "CONVERGE_TEST_PARENT_DEATH"

// TestClusterDiesWithParent starts a cluster from a child test process
// that then panics, or is killed with SIGKILL, and checks that the cluster
// does not outlive it.
func TestClusterDiesWithParent(t *testing.T) {
	if mode := os.Getenv(childEnv); mode != "" {
		runChild(mode)
		return
	}
	for _, mode := range []string{"panic", "sigkill"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestClusterDiesWithParent$", "-test.count=1")
			cmd.Env = append(os.Environ(), childEnv+"="+mode, "CONVERGE_TEST_DIR="+t.TempDir())
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pid := readPID(t, stdout)
			if mode == "sigkill" {
				cmd.Process.Signal(syscall.SIGKILL)
			}
			cmd.Wait()
			deadline := time.Now().Add(10 * time.Second)
			for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				syscall.Kill(-pid, syscall.SIGKILL)
				t.Errorf("control plane pid %d outlived its parent (%s): kill 0 = %v", pid, mode, err)
			}
		})
	}
}

func readPID(t *testing.T, r interface{ Read([]byte) (int, error) }) int {
	t.Helper()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "cluster-pid "); ok {
			pid, err := strconv.Atoi(rest)
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
	}
	t.Fatal("child never reported a cluster pid")
	return 0
}

// runChild starts a cluster, reports its pid and dies as asked.
func runChild(mode string) {
	c, err := localcluster.Start(context.Background(), localcluster.Options{Name: "child", Dir: os.Getenv("CONVERGE_TEST_DIR")})
	if err != nil {
		fmt.Println("child start:", err)
		os.Exit(3)
	}
	fmt.Printf("cluster-pid %d\n", c.PID)
	if mode == "panic" {
		panic("child test panics with a cluster running")
	}
	time.Sleep(time.Minute) // waits for SIGKILL
}
