package argocd

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
)

// SecretTypeLabel marks Argo CD's configuration Secrets; the value
// "cluster" registers a destination cluster.
const SecretTypeLabel = "argocd.argoproj.io/secret-type"

// InClusterName is the name Argo CD gives the cluster it runs in.
const InClusterName = "in-cluster"

// BreakGlassAnnotation on a cluster Secret pauses every automated sync
// to that cluster (its value says why); manual syncs still run. It is
// converge's, for the seed's §10 per-cluster break-glass path.
const BreakGlassAnnotation = "converge.dev/break-glass"

// Cluster is a destination an Application can deploy to.
type Cluster struct {
	Name, Server string
	// Secret names the cluster Secret ("" for the implicit in-cluster).
	Secret string
	// BreakGlass, when set, says why automated syncs to it are paused.
	BreakGlass string
	// Config reaches the cluster; nil for the cluster converge runs in.
	Config *rest.Config
}

// InCluster reports whether c is the cluster converge runs in.
func (c Cluster) InCluster() bool { return c.Config == nil }

// clusterConfig is the JSON of a cluster Secret's config key, as Argo CD
// documents it for declarative setup.
type clusterConfig struct {
	Username        string `json:"username,omitempty"`
	Password        string `json:"password,omitempty"`
	BearerToken     string `json:"bearerToken,omitempty"`
	TLSClientConfig struct {
		Insecure   bool   `json:"insecure,omitempty"`
		ServerName string `json:"serverName,omitempty"`
		CAData     []byte `json:"caData,omitempty"`
		CertData   []byte `json:"certData,omitempty"`
		KeyData    []byte `json:"keyData,omitempty"`
	} `json:"tlsClientConfig"`
	ExecProviderConfig *struct {
		Command     string            `json:"command"`
		Args        []string          `json:"args,omitempty"`
		Env         map[string]string `json:"env,omitempty"`
		APIVersion  string            `json:"apiVersion,omitempty"`
		InstallHint string            `json:"installHint,omitempty"`
	} `json:"execProviderConfig,omitempty"`
	AWSAuthConfig      json.RawMessage `json:"awsAuthConfig,omitempty"`
	ProxyURL           string          `json:"proxyUrl,omitempty"`
	DisableCompression bool            `json:"disableCompression,omitempty"`
}

// ClusterOf reads a cluster Secret. Errors name the Secret and the key;
// they never quote a credential.
func ClusterOf(sec *corev1.Secret) (Cluster, error) {
	id := "cluster secret " + sec.Namespace + "/" + sec.Name
	c := Cluster{Name: string(sec.Data["name"]), Server: strings.TrimRight(string(sec.Data["server"]), "/"), Secret: sec.Name}
	if c.Server == "" {
		return c, fmt.Errorf("%s: no server", id)
	}
	if c.Name == "" {
		c.Name = c.Server // Argo CD shows the URL for an unnamed cluster
	}
	var cc clusterConfig
	if raw := sec.Data["config"]; len(raw) > 0 {
		if err := json.Unmarshal(raw, &cc); err != nil {
			// The error could quote the token: say where, not what.
			return c, fmt.Errorf("%s: config is not the JSON Argo CD documents", id)
		}
	}
	if len(cc.AWSAuthConfig) > 0 && string(cc.AWSAuthConfig) != "null" {
		return c, fmt.Errorf("%s: config.awsAuthConfig is not supported by converge (use execProviderConfig or a bearer token)", id)
	}
	cfg := &rest.Config{Host: c.Server, Username: cc.Username, Password: cc.Password, BearerToken: cc.BearerToken,
		DisableCompression: cc.DisableCompression,
		TLSClientConfig: rest.TLSClientConfig{Insecure: cc.TLSClientConfig.Insecure, ServerName: cc.TLSClientConfig.ServerName,
			CAData: cc.TLSClientConfig.CAData, CertData: cc.TLSClientConfig.CertData, KeyData: cc.TLSClientConfig.KeyData}}
	if e := cc.ExecProviderConfig; e != nil {
		exec := &clientcmdapi.ExecConfig{Command: e.Command, Args: e.Args, APIVersion: e.APIVersion, InstallHint: e.InstallHint,
			InteractiveMode: clientcmdapi.NeverExecInteractiveMode}
		keys := make([]string, 0, len(e.Env))
		for k := range e.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			exec.Env = append(exec.Env, clientcmdapi.ExecEnvVar{Name: k, Value: e.Env[k]})
		}
		cfg.ExecProvider = exec
	}
	if cc.ProxyURL != "" {
		return c, fmt.Errorf("%s: config.proxyUrl is not supported by converge", id)
	}
	c.BreakGlass = sec.Annotations[BreakGlassAnnotation]
	if c.Server == InClusterServer {
		// A Secret may name or label the cluster converge runs in; it is
		// still reached as this one.
		return c, nil
	}
	c.Config = cfg
	return c, nil
}

// ResolveDestination finds the cluster an Application's destination
// names among the registered ones, as Argo CD does: by server or by
// name, never both; "https://kubernetes.default.svc" and "in-cluster"
// are the cluster converge runs in unless a Secret registers them.
func ResolveDestination(d v1alpha1.ApplicationDestination, clusters []Cluster) (Cluster, error) {
	if d.Server != "" && d.Name != "" {
		return Cluster{}, fmt.Errorf("spec.destination: application destination can't have both name and server defined: %s %s", d.Name, d.Server)
	}
	server := strings.TrimRight(d.Server, "/")
	for _, c := range clusters {
		if (server != "" && c.Server == server) || (d.Name != "" && c.Name == d.Name) {
			return c, nil
		}
	}
	switch {
	case server == "" && d.Name == "", server == InClusterServer, d.Name == InClusterName:
		return Cluster{Name: InClusterName, Server: InClusterServer}, nil
	case d.Name != "":
		return Cluster{}, fmt.Errorf("spec.destination.name: there are no clusters with this name: %s", d.Name)
	}
	return Cluster{}, fmt.Errorf("spec.destination.server: there are no clusters with this URL: %s", d.Server)
}

// InClusterDestination reports whether d names the cluster converge runs
// in without consulting cluster Secrets: the default server or name, or
// none. Callers that cannot resolve other clusters refuse the rest.
func InClusterDestination(d v1alpha1.ApplicationDestination) bool {
	server := strings.TrimRight(d.Server, "/")
	return (server == "" || server == InClusterServer) && (d.Name == "" || d.Name == InClusterName)
}

// ClusterSecret is the Secret that registers a cluster reached by cfg
// under name, in Argo CD's declarative form: a bearer token, a user and
// password, or client certificates, with the server's CA. A config that
// reads files (certificate paths, token files) is made self-contained.
func ClusterSecret(namespace, name string, cfg *rest.Config) (*corev1.Secret, error) {
	if err := rest.LoadTLSFiles(cfg); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	var cc clusterConfig
	cc.Username, cc.Password, cc.BearerToken = cfg.Username, cfg.Password, cfg.BearerToken
	t := cfg.TLSClientConfig
	cc.TLSClientConfig.Insecure, cc.TLSClientConfig.ServerName = t.Insecure, t.ServerName
	cc.TLSClientConfig.CAData, cc.TLSClientConfig.CertData, cc.TLSClientConfig.KeyData = t.CAData, t.CertData, t.KeyData
	if cfg.ExecProvider != nil || cfg.AuthProvider != nil || cfg.BearerTokenFile != "" {
		return nil, fmt.Errorf("cluster %s: its kubeconfig authenticates with an exec or auth provider or a token file; register it with a token or client certificates", name)
	}
	data, err := json.Marshal(cc)
	if err != nil {
		return nil, err
	}
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-" + name, Namespace: namespace, Labels: map[string]string{SecretTypeLabel: "cluster"}},
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{"name": name, "server": strings.TrimRight(cfg.Host, "/"), "config": string(data)},
	}, nil
}
