//go:build sidebyside

package fluxcontrollers

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestBinaries builds both controllers (once per machine) and checks
// that each takes the flags Start passes.
func TestBinaries(t *testing.T) {
	want := map[string][]string{
		SourceController.Name:    {"--storage-path", "--storage-addr", "--storage-adv-addr", "--metrics-addr", "--health-addr", "--enable-leader-election", "--log-level"},
		KustomizeController.Name: {"--concurrent", "--metrics-addr", "--health-addr", "--enable-leader-election", "--log-level"},
	}
	for _, c := range []Controller{SourceController, KustomizeController} {
		bin, err := c.Binary(context.Background(), os.Stderr)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := exec.Command(bin, "--help").CombinedOutput()
		for _, f := range want[c.Name] {
			if !strings.Contains(string(out), f+" ") && !strings.Contains(string(out), f+"=") {
				t.Errorf("%s %s takes no %s:\n%s", c.Name, c.Version, f, out)
			}
		}
	}
}
