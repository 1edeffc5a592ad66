package trace

import (
	"context"
	"testing"

	"converge.dev/converge/internal/source/git"
	"converge.dev/converge/internal/units"
)

// TestCredentialsStayHome: the caller's Git credentials go only to
// sources under the trusted prefix, never to a host a unit's author
// named.
func TestCredentialsStayHome(t *testing.T) {
	o := Options{GitAuth: git.Auth{BearerToken: "secret"}, Trusted: "https://gitea.internal/"}
	for url, want := range map[string]string{
		"https://gitea.internal/platform/deploy.git": "secret",
		"https://gitea.internal.evil.example/x.git":  "",
		"https://evil.example/gitea.internal/x.git":  "",
	} {
		rep := &Report{Unit: &units.Summary{Ref: units.Ref{Kind: "Application"}}, Source: url + " apps/web"}
		_, auth, ok := o.repoURL(context.Background(), rep)
		if !ok || auth.BearerToken != want {
			t.Errorf("%s: token %q, want %q", url, auth.BearerToken, want)
		}
	}
	if (Options{Trusted: "https://gitea.internal"}).trusted("https://gitea.internal.evil.example/x.git") {
		t.Error("a prefix without its slash trusted another host")
	}
	if !(Options{Trusted: "https://gitea.internal"}).trusted("https://gitea.internal/x.git") {
		t.Error("a prefix without its slash did not trust its own host")
	}
	if (Options{GitAuth: git.Auth{BearerToken: "secret"}}).trusted("https://gitea.internal/x.git") {
		t.Error("with no trusted prefix, credentials went somewhere")
	}
}
