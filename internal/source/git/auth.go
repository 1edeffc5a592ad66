package git

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Auth holds credentials for one repository. Which fields apply depends
// on the URL's scheme; the zero Auth is anonymous.
type Auth struct {
	// Username and Password are HTTP basic auth (https, http).
	Username, Password string
	// BearerToken is sent as "Authorization: Bearer" (https, http).
	BearerToken string
	// SSHKey is a PEM private key (ssh); SSHUser defaults to "git".
	SSHKey  []byte
	SSHUser string
	// KnownHosts is known_hosts content that the server's key must match
	// (ssh). It is required: a host key is never accepted blindly.
	KnownHosts []byte
}

func (a Auth) method(repoURL string) (transport.AuthMethod, error) {
	ep, err := transport.NewEndpoint(repoURL)
	if err != nil {
		return nil, err
	}
	switch ep.Protocol {
	case "http", "https":
		switch {
		case a.BearerToken != "":
			return &http.TokenAuth{Token: a.BearerToken}, nil
		case a.Username != "" || a.Password != "":
			return &http.BasicAuth{Username: a.Username, Password: a.Password}, nil
		}
		return nil, nil
	case "ssh":
		if len(a.KnownHosts) == 0 {
			return nil, fmt.Errorf("ssh needs known_hosts: refusing to trust %s's host key blindly", ep.Host)
		}
		user := a.SSHUser
		if user == "" {
			user = ep.User
		}
		if user == "" {
			user = "git"
		}
		keys, err := gitssh.NewPublicKeys(user, a.SSHKey, "")
		if err != nil {
			return nil, fmt.Errorf("ssh key: %w", err)
		}
		cb, err := hostKeyCallback(a.KnownHosts)
		if err != nil {
			return nil, err
		}
		keys.HostKeyCallback = cb
		return keys, nil
	}
	return nil, nil
}

// hostKeyCallback parses known_hosts content; x/crypto only reads files,
// so the content goes through a private temporary file.
func hostKeyCallback(content []byte) (ssh.HostKeyCallback, error) {
	dir, err := os.MkdirTemp("", "converge-known-hosts-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(path, []byte(strings.TrimSpace(string(content))+"\n"), 0o600); err != nil {
		return nil, err
	}
	cb, err := knownhosts.New(path)
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	return cb, nil
}

// Transport is the go-git auth method for repoURL, for code that writes
// to a repository (a backport's push) with the same credentials.
func (a Auth) Transport(repoURL string) (transport.AuthMethod, error) {
	return a.method(repoURL)
}
