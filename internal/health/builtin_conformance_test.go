package health

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/object"
)

// conformanceDir is the shared conformance data, beside the repository.
var conformanceDir = filepath.Join("..", "..", "..", "shared", "conformance")

func readObject(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("conformance data: %v (it lives in ../shared/conformance beside the checkout)", err)
	}
	// As the engine sees objects: whole numbers are int64.
	m, err := object.DecodeMap(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &unstructured.Unstructured{Object: m}
}

// TestBuiltinConformance runs gitops-engine's core-kind cases: every status
// must agree, and every message the reference checks. "-" means the
// reference has no rule for the kind, so neither may our core rules.
func TestBuiltinConformance(t *testing.T) {
	dir := filepath.Join(conformanceDir, "builtin-health")
	f, err := os.Open(filepath.Join(dir, "expected.tsv"))
	if err != nil {
		t.Fatalf("conformance data: %v", err)
	}
	defer f.Close()
	cases := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		file, want := cols[0], cols[1]
		wantMsg := ""
		if len(cols) > 2 {
			wantMsg = cols[2]
		}
		cases++
		t.Run(file, func(t *testing.T) {
			got, ok := Core(readObject(t, filepath.Join(dir, file)))
			if want == "-" {
				if ok {
					t.Errorf("got %s %q, want no built-in rule", got.Status, got.Message)
				}
				return
			}
			if !ok || string(got.Status) != want {
				t.Errorf("got %s (covered %t) %q, want %s", got.Status, ok, got.Message, want)
			}
			if wantMsg != "" && got.Message != wantMsg {
				t.Errorf("message: got %q, want %q", got.Message, wantMsg)
			}
		})
	}
	if cases < 50 {
		t.Errorf("read %d cases from expected.tsv, want 50", cases)
	}
}
