package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"converge.dev/converge/internal/controller"
	"converge.dev/converge/internal/server/session"
)

func newServerCmd() *cobra.Command {
	var kubeconfig, kcontext string
	ui := uiFlags{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the web UI and its API apart from the controller",
		Long: `The server serves the web UI and its API (/api/v1) from caches of its own,
as Argo CD's argocd-server runs apart from its controller: it lists every
unit whatever shards or label selectors the controllers run with, and
scales on its own. Its actions (refresh, sync, rollback, suspend, resume,
delete) are writes to the units that the controllers carry out. History
shows revisions without commit messages: those are in the controller's
Git cache.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := restConfig(kubeconfig, kcontext)
			if err != nil {
				return err
			}
			o := controller.ServeOptions{Logger: klog.NewKlogr()}
			if o.UI, err = ui.options(cmd.ErrOrStderr()); err != nil {
				return err
			}
			return controller.Serve(cmd.Context(), cfg, o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&kcontext, "context", "", "kubeconfig context")
	ui.add(fs, ":8080", "")
	return cmd
}

// uiFlags are the web UI's flags, the same on `converge controller` and
// `converge server`.
type uiFlags struct {
	o                              controller.UIOptions
	admin                          bool
	oidcIssuer, oidcClient, public string
}

func (f *uiFlags) add(fs *pflag.FlagSet, addr, addrNote string) {
	fs.StringVar(&f.o.Addr, "ui-addr", addr, "address of the web UI and its API (/api/v1), e.g. :8080"+addrNote+";\n"+
		"logins are local accounts, access is Argo CD's RBAC from ConfigMap argocd-rbac-cm in --ui-rbac-namespace")
	fs.StringVar(&f.o.RBACNamespace, "ui-rbac-namespace", "argocd", "namespace of argocd-rbac-cm and of the AppProjects whose roles count, Argo CD's own")
	fs.StringVar(&f.oidcIssuer, "ui-oidc-issuer", "", "OpenID Connect issuer to log in to the UI with (client secret from $CONVERGE_UI_OIDC_CLIENT_SECRET)")
	fs.StringVar(&f.oidcClient, "ui-oidc-client-id", "", "the UI's client ID at --ui-oidc-issuer")
	fs.StringVar(&f.public, "ui-url", "", "the UI's address as browsers reach it, e.g. https://converge.example.com (for the OIDC callback)")
	fs.BoolVar(&f.admin, "ui-admin", false, "make a local admin account for the UI and print its password once")
	fs.StringVar(&f.o.KeySecret.Name, "ui-session-secret", "", "Secret (in --ui-rbac-namespace) with the UI's session keys, made if missing,\n"+
		"so that logins survive restarts and work on every replica (default: keys per process)")
	fs.BoolVar(&f.o.Secure, "ui-secure-cookies", false, "mark the UI's cookies HTTPS-only (behind a TLS proxy)")
}

// options are the UIOptions the flags say; a local admin's password is
// printed to w, once.
func (f *uiFlags) options(w io.Writer) (controller.UIOptions, error) {
	o := f.o
	if f.oidcIssuer != "" {
		if f.public == "" {
			return o, fmt.Errorf("--ui-oidc-issuer needs --ui-url, the UI's address as browsers reach it (for the callback)")
		}
		o.OIDC = &session.OIDCConfig{Issuer: f.oidcIssuer, ClientID: f.oidcClient, RedirectURL: strings.TrimRight(f.public, "/") + "/auth/callback",
			ClientSecret: os.Getenv("CONVERGE_UI_OIDC_CLIENT_SECRET")}
	}
	o.KeySecret.Namespace = o.RBACNamespace
	if f.admin {
		password, accounts, err := adminAccount()
		if err != nil {
			return o, err
		}
		o.Accounts = accounts
		fmt.Fprintf(w, "UI login: admin / %s (shown once)\n", password)
	}
	return o, nil
}

// adminAccount makes the UI's local admin account with a fresh password,
// for the caller to say once.
func adminAccount() (string, map[string]session.Account, error) {
	password := session.RandomPassword()
	acc, err := session.NewAccount(password)
	return password, map[string]session.Account{"admin": acc}, err
}
