package health

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var updateAgreement = flag.Bool("update-agreement", false, "record the current argocd-health agreement in testdata/argocd-agreement.txt")

// argocdCase is one entry of a health_test.yaml.
type argocdCase struct {
	HealthStatus struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	} `json:"healthStatus"`
	InputPath string `json:"inputPath"`
	// One file (apps.kruise.io CloneSet) spells the key in lower case.
	InputPathLower string `json:"inputpath"`
}

type tally struct{ cases, status, message int }

// TestArgoCDHealthConformance runs every case of Argo CD's health corpus
// through the built-in rules (core kinds, then the generic conditions
// rule). It prints, per kind, the cases and how many agree on status and
// on message, lists every disagreement with -v, and fails when agreement
// falls below the level recorded in testdata/argocd-agreement.txt.
func TestArgoCDHealthConformance(t *testing.T) {
	root := filepath.Join(conformanceDir, "argocd-health")
	files, err := filepath.Glob(filepath.Join(root, "*", "*", "health_test.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("conformance data: no health_test.yaml under %s (%v)", root, err)
	}
	perKind := map[string]*tally{}
	var total tally
	var disagreements []string
	for _, file := range files {
		kindDir := filepath.Dir(file)
		kind, _ := filepath.Rel(root, kindDir)
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var spec struct{ Tests []argocdCase }
		if err := yaml.Unmarshal(data, &spec); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		k := perKind[kind]
		if k == nil {
			k = &tally{}
			perKind[kind] = k
		}
		for _, c := range spec.Tests {
			input := c.InputPath
			if input == "" {
				input = c.InputPathLower
			}
			got, ok := Assess(readObject(t, filepath.Join(kindDir, input)))
			k.cases++
			total.cases++
			statusOK := ok && string(got.Status) == c.HealthStatus.Status
			if statusOK {
				k.status++
				total.status++
			}
			if ok && got.Message == c.HealthStatus.Message {
				k.message++
				total.message++
			}
			if !statusOK {
				gotStatus := string(got.Status)
				if !ok {
					gotStatus = "(none)"
				}
				disagreements = append(disagreements, fmt.Sprintf("%s/%s: got %s %q, want %s %q",
					kind, input, gotStatus, got.Message, c.HealthStatus.Status, c.HealthStatus.Message))
			}
		}
	}

	kinds := make([]string, 0, len(perKind))
	for k := range perKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var table strings.Builder
	fmt.Fprintf(&table, "%-70s %5s %6s %7s\n", "kind", "cases", "status", "message")
	for _, k := range kinds {
		v := perKind[k]
		fmt.Fprintf(&table, "%-70s %5d %6d %7d\n", k, v.cases, v.status, v.message)
	}
	fmt.Fprintf(&table, "%-70s %5d %6d %7d\n", "TOTAL", total.cases, total.status, total.message)
	t.Logf("argocd-health agreement: %d kinds, %d cases, status %d (%.1f%%), message %d (%.1f%%)\n%s",
		len(kinds), total.cases, total.status, pct(total.status, total.cases), total.message, pct(total.message, total.cases), table.String())
	for _, d := range disagreements {
		t.Log("disagree: " + d)
	}

	recorded := filepath.Join("testdata", "argocd-agreement.txt")
	if *updateAgreement {
		line := fmt.Sprintf("cases %d status %d message %d\n", total.cases, total.status, total.message)
		if err := os.WriteFile(recorded, []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want := readAgreement(t, recorded)
	if total.cases != want["cases"] {
		t.Errorf("corpus has %d cases, the record says %d: re-record with -update-agreement", total.cases, want["cases"])
	}
	if total.status < want["status"] || total.message < want["message"] {
		t.Errorf("agreement dropped: status %d (recorded %d), message %d (recorded %d)",
			total.status, want["status"], total.message, want["message"])
	}
}

func readAgreement(t *testing.T, path string) map[string]int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: record it with go test ./internal/health -run ArgoCD -update-agreement", err)
	}
	f := strings.Fields(string(data))
	out := map[string]int{}
	for i := 0; i+1 < len(f); i += 2 {
		n, err := strconv.Atoi(f[i+1])
		if err != nil {
			t.Fatalf("%s: %q is not a number", path, f[i+1])
		}
		out[f[i]] = n
	}
	return out
}

func pct(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return 100 * float64(n) / float64(d)
}
