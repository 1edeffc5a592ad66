// Package lint finds the GitOps anti-patterns the seed names (§3.2,
// §3.3, §6.3, §8.2, §18.1) in a repository, before merge: environment
// branches, floating image tags, plaintext Secrets, production paths
// without code owners, sync waves on everything, pruning app-of-apps
// roots, ApplicationSets that delete what they generated, self-heal
// without a drift policy, and replicas an autoscaler fights. Each
// finding has a stable rule id, a severity and the file. It reads files
// and renders units offline; it writes nothing.
package lint

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/reposcan"
)

// Severity is how bad a finding is: an error fails the check.
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Rule is one anti-pattern.
type Rule struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Severity Severity `json:"severity"`
	// Why is the seed's reason, in a line.
	Why string `json:"why"`
}

// Rules are every rule, by id. Ids never change meaning.
var Rules = []Rule{
	{"CV000", "unrendered", Warning, "a unit that does not render offline cannot be checked: converge validate says why"},
	{"CV001", "environment-branch", Warning, "an environment is a folder on one branch, not a branch per environment (§6.3): promotion becomes a merge between long-lived branches"},
	{"CV002", "floating-tag", Error, "a :latest or untagged image names whatever was pushed last: no two syncs need run the same thing"},
	{"CV003", "tag-without-digest", Error, "staging and production run a digest: a tag can be moved to other bytes after review (§7)"},
	{"CV004", "plaintext-secret", Error, "a Secret in Git must be encrypted (SOPS) or come from a secret store (§9)"},
	{"CV005", "production-without-codeowners", Warning, "production paths need owners whose review is required (§18.1)"},
	{"CV006", "sync-waves-everywhere", Warning, "sync waves on nearly every object is procedural logic in a declarative system (§3.3)"},
	{"CV007", "prune-on-root", Error, "an app-of-apps root that prunes deletes every child Application when a file moves (§3.5)"},
	{"CV008", "appset-without-preserve", Warning, "an ApplicationSet without preserveResourcesOnDeletion deletes what it generated when it goes (§3.5, §17.4)"},
	{"CV009", "selfheal-without-drift-policy", Warning, "self-heal reverts every manual fix, an emergency's too, unless a drift policy says which drift is allowed (§3.2)"},
	{"CV010", "hpa-replicas-in-git", Warning, "replicas in Git fight the autoscaler that owns them unless a rule ignores them (§8.2)"},
}

// RuleOf is the rule with id or name, nil if none.
func RuleOf(idOrName string) *Rule {
	for i := range Rules {
		if Rules[i].ID == idOrName || Rules[i].Name == idOrName {
			return &Rules[i]
		}
	}
	return nil
}

// Finding is one anti-pattern found.
type Finding struct {
	Rule     string   `json:"rule"`
	Name     string   `json:"name"`
	Severity Severity `json:"severity"`
	File     string   `json:"file"`
	// Object is the object it is about, when there is one.
	Object  string `json:"object,omitempty"`
	Message string `json:"message"`
}

// Options shape a run. The zero value runs every rule and renders
// nothing (image rules then read the manifests as written).
type Options struct {
	// Disable turns rules off everywhere, by id or name.
	Disable []string
	// Render renders a unit's folder of the repository offline. Units
	// are Applications, Flux Kustomizations and kustomize folders no
	// other one includes.
	Render func(ctx context.Context, u engine.Unit) ([]object.Decoded, error)
}

// ConfigFile is where a repository turns rules off per path.
const ConfigFile = ".converge/lint.yaml"

// Config is ConfigFile: rules off, everywhere or under paths.
type Config struct {
	Disable []struct {
		Rule string `json:"rule"`
		// Paths are globs from the repository root (** crosses folders);
		// none is everywhere.
		Paths []string `json:"paths,omitempty"`
	} `json:"disable"`
}

// Run lints the repository checked out at root.
func Run(ctx context.Context, root string, o Options) ([]Finding, error) {
	r, err := reposcan.Scan(root)
	if err != nil {
		return nil, err
	}
	off, err := disabled(root, o.Disable)
	if err != nil {
		return nil, err
	}
	var out []Finding
	add := func(id, file, obj, format string, a ...any) {
		rule := RuleOf(id)
		if off(id, file) {
			return
		}
		out = append(out, Finding{Rule: rule.ID, Name: rule.Name, Severity: rule.Severity, File: file, Object: obj, Message: fmt.Sprintf(format, a...)})
	}
	for _, check := range []func(*reposcan.Repo, func(id, file, obj, format string, a ...any)){
		environmentBranches, plaintextSecrets, codeOwners, pruneOnRoot, appSetPreserve, selfHeal, hpaReplicas,
	} {
		check(r, add)
	}
	if err := rendered(ctx, r, o.Render, add); err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		return a.Object < b.Object
	})
	return out, nil
}

// disabled reads ConfigFile and the flags into a test of (rule, file).
func disabled(root string, flags []string) (func(rule, file string) bool, error) {
	type off struct {
		rule  string
		paths []*regexp.Regexp
	}
	var offs []off
	for _, f := range flags {
		rule := RuleOf(f)
		if rule == nil {
			return nil, fmt.Errorf("--disable %q: no such rule (converge lint --rules lists them)", f)
		}
		offs = append(offs, off{rule: rule.ID})
	}
	data, err := os.ReadFile(filepath.Join(root, ConfigFile))
	switch {
	case os.IsNotExist(err):
	case err != nil:
		return nil, err
	default:
		var c Config
		if err := yaml.UnmarshalStrict(data, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", ConfigFile, err)
		}
		for i, d := range c.Disable {
			rule := RuleOf(d.Rule)
			if rule == nil {
				return nil, fmt.Errorf("%s: disable[%d].rule %q: no such rule", ConfigFile, i, d.Rule)
			}
			o := off{rule: rule.ID}
			for _, p := range d.Paths {
				o.paths = append(o.paths, globRE(p))
			}
			offs = append(offs, o)
		}
	}
	return func(rule, file string) bool {
		for _, o := range offs {
			if o.rule != rule {
				continue
			}
			if len(o.paths) == 0 {
				return true
			}
			for _, re := range o.paths {
				// A finding's file may be a folder: "legacy/**" holds "legacy".
				if re.MatchString(file) || re.MatchString(file+"/") {
					return true
				}
			}
		}
		return false
	}, nil
}

// globRE is a path glob as a regular expression: "*" within a folder,
// "**" across folders, a pattern ending in "/" the whole folder.
func globRE(glob string) *regexp.Regexp {
	glob = strings.TrimPrefix(glob, "/")
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; {
		case c == '*' && i+1 < len(glob) && glob[i+1] == '*':
			b.WriteString(".*")
			i++
			if i+1 < len(glob) && glob[i+1] == '/' {
				i++
				b.WriteString("/?")
			}
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	if strings.HasSuffix(glob, "/") {
		b.WriteString(".*")
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}
