package argocd

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
)

func clusterSecret(name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "argocd"}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

// TestClusterOf reads cluster Secrets in the forms Argo CD's declarative
// setup documents, and names what it refuses without quoting a secret.
func TestClusterOf(t *testing.T) {
	tests := []struct {
		name  string
		data  map[string]string
		check func(*testing.T, Cluster)
		err   string
	}{
		{name: "bearer token and CA", data: map[string]string{"name": "east", "server": "https://east.example:6443/",
			"config": `{"bearerToken":"s3cret","tlsClientConfig":{"insecure":false,"caData":"Q0EtUEVN"}}`},
			check: func(t *testing.T, c Cluster) {
				if c.Name != "east" || c.Server != "https://east.example:6443" || c.Config.BearerToken != "s3cret" || string(c.Config.CAData) != "CA-PEM" || c.InCluster() {
					t.Errorf("%+v %+v", c, c.Config)
				}
			}},
		{name: "client certificates", data: map[string]string{"server": "https://west:6443",
			"config": `{"tlsClientConfig":{"certData":"Q0VSVA==","keyData":"S0VZ","serverName":"kubernetes"}}`},
			check: func(t *testing.T, c Cluster) {
				if c.Name != "https://west:6443" || string(c.Config.CertData) != "CERT" || string(c.Config.KeyData) != "KEY" || c.Config.ServerName != "kubernetes" {
					t.Errorf("%+v %+v", c, c.Config)
				}
			}},
		{name: "exec provider", data: map[string]string{"name": "gke", "server": "https://gke",
			"config": `{"execProviderConfig":{"command":"argocd-k8s-auth","args":["gcp"],"env":{"B":"2","A":"1"},"apiVersion":"client.authentication.k8s.io/v1beta1"}}`},
			check: func(t *testing.T, c Cluster) {
				e := c.Config.ExecProvider
				if e == nil || e.Command != "argocd-k8s-auth" || len(e.Env) != 2 || e.Env[0].Name != "A" {
					t.Errorf("%+v", e)
				}
			}},
		{name: "a Secret for the cluster converge runs in stays local", data: map[string]string{"name": "home", "server": InClusterServer},
			check: func(t *testing.T, c Cluster) {
				if !c.InCluster() || c.Name != "home" {
					t.Errorf("%+v", c)
				}
			}},
		{name: "no server", data: map[string]string{"name": "x"}, err: "cluster secret argocd/c: no server"},
		{name: "aws auth", data: map[string]string{"server": "https://eks", "config": `{"awsAuthConfig":{"clusterName":"prod"}}`},
			err: "config.awsAuthConfig is not supported"},
		{name: "broken JSON never quotes the token", data: map[string]string{"server": "https://x", "config": `{"bearerToken":"s3cret"`},
			err: "config is not the JSON Argo CD documents"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ClusterOf(clusterSecret("c", tc.data))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("err %v, want ~%q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestResolveDestination(t *testing.T) {
	east := Cluster{Name: "east", Server: "https://east:6443", Secret: "cluster-east", Config: &rest.Config{Host: "https://east:6443"}}
	clusters := []Cluster{east}
	tests := []struct {
		name string
		dest v1alpha1.ApplicationDestination
		want string // cluster name; "" for an error
		err  string
	}{
		{name: "by name", dest: v1alpha1.ApplicationDestination{Name: "east", Namespace: "x"}, want: "east"},
		{name: "by server, trailing slash", dest: v1alpha1.ApplicationDestination{Server: "https://east:6443/"}, want: "east"},
		{name: "in-cluster by server", dest: v1alpha1.ApplicationDestination{Server: InClusterServer}, want: InClusterName},
		{name: "in-cluster by name", dest: v1alpha1.ApplicationDestination{Name: "in-cluster"}, want: InClusterName},
		{name: "empty is in-cluster", dest: v1alpha1.ApplicationDestination{Namespace: "x"}, want: InClusterName},
		{name: "unknown name", dest: v1alpha1.ApplicationDestination{Name: "west"}, err: "there are no clusters with this name: west"},
		{name: "unknown server", dest: v1alpha1.ApplicationDestination{Server: "https://west"}, err: "there are no clusters with this URL: https://west"},
		{name: "both", dest: v1alpha1.ApplicationDestination{Server: "https://east:6443", Name: "east"}, err: "can't have both name and server"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ResolveDestination(tc.dest, clusters)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want ~%q", err, tc.err)
				}
				return
			}
			if err != nil || c.Name != tc.want {
				t.Fatalf("got %+v, %v; want %s", c, err, tc.want)
			}
			if (c.Name == InClusterName) != c.InCluster() {
				t.Errorf("InCluster() %v for %s", c.InCluster(), c.Name)
			}
		})
	}
}

// TestClusterSecretRoundTrip: what `converge cluster register` writes is
// what the controller reads back.
func TestClusterSecretRoundTrip(t *testing.T) {
	cfg := &rest.Config{Host: "https://127.0.0.1:6443/", TLSClientConfig: rest.TLSClientConfig{CAData: []byte("CA"), CertData: []byte("CERT"), KeyData: []byte("KEY")}}
	sec, err := ClusterSecret("argocd", "one", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sec.Name != "cluster-one" || sec.Labels[SecretTypeLabel] != "cluster" {
		t.Errorf("secret %s labels %v", sec.Name, sec.Labels)
	}
	sec.Data = map[string][]byte{}
	for k, v := range sec.StringData {
		sec.Data[k] = []byte(v)
	}
	c, err := ClusterOf(sec)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "one" || c.Server != "https://127.0.0.1:6443" || string(c.Config.CertData) != "CERT" || string(c.Config.CAData) != "CA" {
		t.Errorf("%+v %+v", c, c.Config)
	}
	if _, err := ClusterSecret("argocd", "gke", &rest.Config{Host: "https://x", BearerTokenFile: "/var/run/token"}); err == nil {
		t.Error("a token file was registered: the Secret would not reach the cluster")
	}
}

func TestClusterOfBreakGlass(t *testing.T) {
	sec := clusterSecret("c", map[string]string{"server": "https://east"})
	sec.Annotations = map[string]string{BreakGlassAnnotation: "INC-7"}
	c, err := ClusterOf(sec)
	if err != nil || c.BreakGlass != "INC-7" {
		t.Fatalf("%+v %v", c, err)
	}
}
