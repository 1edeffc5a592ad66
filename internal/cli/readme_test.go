package cli_test

import (
	"os"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
)

// TestReadmeDriftPolicyIsTheTestedOne keeps README's DriftPolicy example
// (DRIFT.md's, the seed's §8.1) byte for byte the one drift.txtar applies
// to a real edit, so the README shows a policy that works as written.
func TestReadmeDriftPolicyIsTheTestedOne(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "<!-- drift-policy-example -->\n```yaml\n")
	if !ok {
		t.Fatal("README has no drift policy example")
	}
	example, _, _ := strings.Cut(after, "```")
	ar, err := txtar.ParseFile("testdata/script/drift.txtar")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range ar.Files {
		if f.Name == "policy.yaml" {
			if string(f.Data) != example {
				t.Errorf("README's example differs from drift.txtar's policy.yaml:\n%s\n---\n%s", example, f.Data)
			}
			return
		}
	}
	t.Fatal("drift.txtar has no policy.yaml")
}

// TestReadmePipelineIsTheTestedOne keeps README's Pipeline example the one
// promote.txtar applies to a real API server.
func TestReadmePipelineIsTheTestedOne(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "<!-- pipeline-example -->\n```yaml\n")
	if !ok {
		t.Fatal("README has no Pipeline example")
	}
	example, _, _ := strings.Cut(after, "```")
	ar, err := txtar.ParseFile("testdata/script/promote.txtar")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range ar.Files {
		if f.Name == "readme-pipeline.yaml" {
			if string(f.Data) != example {
				t.Errorf("README's example differs from promote.txtar's readme-pipeline.yaml:\n%s\n---\n%s", example, f.Data)
			}
			return
		}
	}
	t.Fatal("promote.txtar has no readme-pipeline.yaml")
}
