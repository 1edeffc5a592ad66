package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/render"
	"converge.dev/converge/internal/render/helm"
	"converge.dev/converge/internal/source/git"
)

// Environment variables that carry Git secrets, so they never appear on a
// command line or in shell history.
const (
	envGitPassword = "CONVERGE_GIT_PASSWORD"
	envGitToken    = "CONVERGE_GIT_TOKEN"
)

// unitFlags are the flags render, diff, sync and status share.
type unitFlags struct {
	repo, revision, path, destNS, name string
	renderKind                         string
	recurse, allowRemote               bool
	helmValueFiles                     []string
	gitUser, sshKey, knownHosts        string
	kubeconfig, context                string
	output                             string
	kubeVersion                        string
	driftPolicies                      []string
}

func (f *unitFlags) register(cmd *cobra.Command, withCluster bool) {
	fs := cmd.Flags()
	fs.StringVar(&f.repo, "repo", "", "Git repository URL (https://, ssh://, file://)")
	fs.StringVar(&f.revision, "revision", "", "branch, tag, commit, or semver:RANGE (default: HEAD)")
	fs.StringVar(&f.path, "path", "", "folder inside the repository")
	fs.StringVar(&f.renderKind, "render", "", "renderer: directory, kustomize or helm (default: detected)")
	fs.BoolVar(&f.recurse, "recurse", true, "read sub-folders of a plain directory")
	fs.BoolVar(&f.allowRemote, "allow-remote-bases", false, "let kustomize fetch remote bases")
	fs.StringSliceVar(&f.helmValueFiles, "values", nil, "Helm values files, relative to the chart")
	fs.StringVar(&f.gitUser, "git-username", "", "HTTP username (password from $"+envGitPassword+")")
	fs.StringVar(&f.sshKey, "ssh-key", "", "private key file for ssh:// repositories")
	fs.StringVar(&f.knownHosts, "known-hosts", "", "known_hosts file for ssh:// repositories")
	fs.StringVarP(&f.output, "output", "o", "", "output format: yaml or json")
	cmd.MarkFlagRequired("repo")
	if !withCluster {
		fs.StringVar(&f.kubeVersion, "kube-version", "", "Kubernetes version a chart is rendered for, checked against its kubeVersion (default: "+helm.DefaultKubeVersion()+")")
	}
	if withCluster {
		fs.StringVarP(&f.destNS, "dest-namespace", "n", "", "namespace for namespaced objects that name none (default: default)")
		fs.StringVar(&f.name, "name", "", "unit name, which owns what it applies (default: derived from repo and path)")
		fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
		fs.StringVar(&f.context, "context", "", "kubeconfig context")
		fs.StringArrayVar(&f.driftPolicies, "drift-policy", nil, "DriftPolicy manifest file deciding which drift is allowed or forbidden (repeatable; default: report all, take back on sync, leave an HPA's replicas)")
	}
}

func (f *unitFlags) unit() (engine.Unit, error) {
	auth := git.Auth{Username: f.gitUser, Password: os.Getenv(envGitPassword), BearerToken: os.Getenv(envGitToken)}
	if f.sshKey != "" {
		key, err := os.ReadFile(f.sshKey)
		if err != nil {
			return engine.Unit{}, fmt.Errorf("--ssh-key: %w", err)
		}
		auth.SSHKey = key
	}
	if f.knownHosts != "" {
		kh, err := os.ReadFile(f.knownHosts)
		if err != nil {
			return engine.Unit{}, fmt.Errorf("--known-hosts: %w", err)
		}
		auth.KnownHosts = kh
	}
	name := f.name
	if name == "" {
		h := sha256.Sum256([]byte(f.repo + "\x00" + f.path))
		name = "cli-" + hex.EncodeToString(h[:])[:12]
	}
	pol, err := readDriftPolicies(f.driftPolicies)
	if err != nil {
		return engine.Unit{}, err
	}
	return engine.Unit{
		Name: name, RepoURL: f.repo, Revision: f.revision, Path: f.path, DestNamespace: f.destNS, Auth: auth, Drift: pol,
		Render: engine.RenderOptions{Kind: render.Kind(f.renderKind), Recurse: f.recurse,
			AllowRemoteBases: f.allowRemote, HelmValueFiles: f.helmValueFiles},
	}, nil
}

// setup reads the unit from the flags and builds its engine.
func (f *unitFlags) setup(withCluster bool) (engine.Unit, *engine.Engine, error) {
	u, err := f.unit()
	if err != nil {
		return engine.Unit{}, nil, err
	}
	eng, err := f.engine(withCluster)
	return u, eng, err
}

// engine builds an Engine; with a cluster it connects through the
// kubeconfig the way kubectl does.
func (f *unitFlags) engine(withCluster bool) (*engine.Engine, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return nil, fmt.Errorf("git cache: %w", err)
	}
	o := engine.Options{Fetcher: git.New(git.Options{CacheDir: filepath.Join(cache, "converge", "git")}), HelmChild: helm.DefaultChild(),
		KubeVersion: f.kubeVersion}
	if withCluster {
		cfg, err := restConfig(f.kubeconfig, f.context)
		if err != nil {
			return nil, err
		}
		cfg.QPS, cfg.Burst = 50, 100
		c, err := cluster.New(cfg)
		if err != nil {
			return nil, err
		}
		o.Cluster = c
	}
	return engine.New(o), nil
}
