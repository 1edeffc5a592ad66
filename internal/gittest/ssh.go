package gittest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// SSH starts the server's SSH endpoint and returns its ssh:// base URL and
// a known_hosts line for its host key.
func (s *Server) SSH(t testing.TB) (baseURL, knownHosts string) {
	t.Helper()
	keyDir := t.TempDir()
	s.KeyDir(keyDir)
	if err := s.ListenSSH(); err != nil {
		t.Fatal(err)
	}
	go s.StartSSH()
	t.Cleanup(func() { s.StopSSH() })
	pubs, _ := filepath.Glob(filepath.Join(keyDir, "*.pub"))
	if len(pubs) != 1 {
		t.Fatalf("ssh host key: found %v", pubs)
	}
	hostKey, err := os.ReadFile(pubs[0])
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(s.SSHAddress(), "ssh://git@")
	host, port, _ := strings.Cut(addr, ":")
	return s.SSHAddress(), fmt.Sprintf("[%s]:%s %s", host, port, strings.TrimSpace(string(hostKey)))
}

// ClientKey returns a new ed25519 private key in PEM form.
func ClientKey(t testing.TB) []byte {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}
