package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

// corePackages are layers L0-L2 of ARCHITECTURE.md: pure logic over
// objects. They must stay free of I/O libraries so that they stay pure,
// fast to test and reusable by every dialect.
var corePackages = []string{"object", "health", "diff", "drift", "plan", "apply", "render", "source"}

var forbidden = []string{
	"k8s.io/client-go",
	"sigs.k8s.io/controller-runtime",
	"helm.sh/helm",
	"sigs.k8s.io/kustomize",
	"github.com/go-git/go-git",
}

// TestCoreLayersStayPure fails when a core package depends, even
// indirectly, on client-go, controller-runtime, Helm, kustomize or go-git.
func TestCoreLayersStayPure(t *testing.T) {
	for _, pkg := range corePackages {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "converge.dev/converge/internal/"+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("internal/%s depends on %s", pkg, dep)
				}
			}
		}
	}
}
