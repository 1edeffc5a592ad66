package health

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestRulesInArgoCDForms: health rules are read as users have them for
// Argo CD: an argocd-cm ConfigMap (per-kind keys, and the older
// resource.customizations block) and the block alone; a wildcard key
// matches every group and kind it covers. Before, only converge's own
// format was read, and a wildcard key was accepted and never matched.
func TestRulesInArgoCDForms(t *testing.T) {
	const script = `hs = {}
hs.status = "Degraded"
hs.message = "from the rule"
return hs
`
	indent := func(s, pad string) string {
		out := ""
		for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
			out += pad + line + "\n"
		}
		return out
	}
	files := map[string]string{
		"configmap per kind": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: argocd-cm, namespace: argocd}\ndata:\n" +
			"  resource.customizations.health.ec2.aws.crossplane.io_Instance: |\n" + indent(script, "    "),
		"configmap block": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: argocd-cm}\ndata:\n  resource.customizations: |\n" +
			"    ec2.aws.crossplane.io/Instance:\n      health.lua: |\n" + indent(script, "        "),
		"block alone":         "ec2.aws.crossplane.io/Instance:\n  health.lua: |\n" + indent(script, "    "),
		"wildcard in block":   "'*.crossplane.io/*':\n  health.lua: |\n" + indent(script, "    "),
		"wildcard in key":     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: argocd-cm}\ndata:\n  resource.customizations.health.*.crossplane.io_*: |\n" + indent(script, "    "),
		"converge own format": "lua:\n  ec2.aws.crossplane.io_Instance: |\n" + indent(script, "    "),
	}
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "ec2.aws.crossplane.io/v1alpha1", "kind": "Instance",
		"metadata": map[string]any{"name": "vm"}}}
	other := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "Instance",
		"metadata": map[string]any{"name": "vm"}}}
	for name, file := range files {
		t.Run(name, func(t *testing.T) {
			cfg, err := ConfigFromFile(name, []byte(file))
			if err != nil {
				t.Fatal(err)
			}
			rules, err := NewRules(cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := rules.Assess(obj)
			if !ok || got.Status != Degraded || got.Message != "from the rule" {
				t.Errorf("got %v %+v, want the rule's Degraded", ok, got)
			}
			if got, _ := rules.Assess(other); got.Message == "from the rule" {
				t.Error("the rule matched a kind of another group")
			}
		})
	}
	if _, err := ConfigFromFile("bad", []byte("apps/Deployment: not-a-map\n")); err == nil {
		t.Error("a block entry that is not a map was accepted")
	}
}
