package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

var secrets = Secrets{GitHub: "gh-secret", GitLab: "gl-token", Gitea: "gt-secret"}

func TestParse(t *testing.T) {
	gh, _ := os.ReadFile("testdata/github-push.json")
	gl, _ := os.ReadFile("testdata/gitlab-push.json")
	gt, _ := os.ReadFile("testdata/gitea-push.json")
	for _, tc := range []struct {
		name    string
		body    []byte
		headers map[string]string
		secrets Secrets
		want    string // forge ref after #changed, or the error
		err     error
	}{
		{name: "github", body: gh, headers: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign("gh-secret", gh)},
			want: "github refs/heads/main 2222222222222222222222222222222222222222 #3"},
		{name: "github wrong key", body: gh, headers: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign("other", gh)}, err: ErrUnverified},
		{name: "github unsigned", body: gh, headers: map[string]string{"X-GitHub-Event": "push"}, err: ErrUnverified},
		{name: "github no secret configured", body: gh, secrets: Secrets{GitLab: "x"},
			headers: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign("", gh)}, err: ErrUnverified},
		{name: "github tampered body", body: append(gh, ' '), headers: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign("gh-secret", gh)}, err: ErrUnverified},
		{name: "github ping", body: []byte(`{"zen":"x"}`), headers: map[string]string{"X-GitHub-Event": "ping", "X-Hub-Signature-256": "sha256=" + sign("gh-secret", []byte(`{"zen":"x"}`))}, err: ErrIgnored},
		{name: "gitlab", body: gl, headers: map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "gl-token"},
			want: "gitlab refs/heads/release 4444444444444444444444444444444444444444 #1"},
		{name: "gitlab wrong token", body: gl, headers: map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "nope"}, err: ErrUnverified},
		{name: "gitlab merge request", body: gl, headers: map[string]string{"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": "gl-token"}, err: ErrIgnored},
		// Gitea sends GitHub's header too; its own signature must decide.
		{name: "gitea", body: gt, headers: map[string]string{"X-Gitea-Event": "push", "X-GitHub-Event": "push", "X-Gitea-Signature": sign("gt-secret", gt)},
			want: "gitea refs/tags/v1.2.0 5555555555555555555555555555555555555555 #0"},
		{name: "gitea signed with the github key", body: gt, headers: map[string]string{"X-Gitea-Event": "push", "X-GitHub-Event": "push",
			"X-Gitea-Signature": sign("gh-secret", gt), "X-Hub-Signature-256": "sha256=" + sign("gh-secret", gt)}, err: ErrUnverified},
		// What Gitea 1.26 really sends: its, Gogs' and GitHub's headers at once.
		{name: "gitea, all headers", body: gt, headers: map[string]string{"X-Gitea-Event": "push", "X-Gogs-Event": "push", "X-GitHub-Event": "push",
			"X-Gitea-Signature": sign("gt-secret", gt), "X-Gogs-Signature": sign("gt-secret", gt), "X-Hub-Signature-256": "sha256=" + sign("gt-secret", gt)},
			want: "gitea refs/tags/v1.2.0 5555555555555555555555555555555555555555 #0"},
		{name: "gogs", body: gt, headers: map[string]string{"X-Gogs-Event": "push", "X-Gogs-Signature": sign("gt-secret", gt)},
			want: "gitea refs/tags/v1.2.0 5555555555555555555555555555555555555555 #0"},
		{name: "no forge", body: gh, err: ErrIgnored},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/api/webhook", bytes.NewReader(tc.body))
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			s := secrets
			if tc.secrets != (Secrets{}) {
				s = tc.secrets
			}
			p, err := Parse(r, s)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("got %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := p.Forge + " " + p.Ref + " " + p.After + " #" + string(rune('0'+len(p.Changed)))
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if len(p.RepoURLs) == 0 || p.DefaultBranch != "main" {
				t.Errorf("urls %v, default branch %q", p.RepoURLs, p.DefaultBranch)
			}
		})
	}
}

func TestAffects(t *testing.T) {
	push := Push{RepoURLs: []string{"https://github.com/platform/apps", "git@github.com:platform/apps.git"},
		Ref: "refs/heads/main", DefaultBranch: "main",
		Changed: []string{"apps/orders-api/overlays/dev/patch.yaml", "apps/orders-api/base/deployment.yaml"}}
	tag := Push{RepoURLs: push.RepoURLs, Ref: "refs/tags/v1.3.0", DefaultBranch: "main"}
	for _, tc := range []struct {
		name string
		p    Push
		s    Source
		want bool
	}{
		{"same repo, branch", push, Source{RepoURL: "https://github.com/platform/apps.git", Revision: "main"}, true},
		{"ssh url, HEAD", push, Source{RepoURL: "ssh://git@GitHub.com/platform/apps", Revision: "HEAD"}, true},
		{"scp url, empty revision", push, Source{RepoURL: "git@github.com:platform/apps.git"}, true},
		{"other repo", push, Source{RepoURL: "https://github.com/platform/apps-other", Revision: "main"}, false},
		{"other org", push, Source{RepoURL: "https://github.com/other/apps", Revision: "main"}, false},
		{"other branch", push, Source{RepoURL: "https://github.com/platform/apps", Revision: "release"}, false},
		{"pinned commit", push, Source{RepoURL: "https://github.com/platform/apps", Revision: "abcdef1234"}, false},
		{"HEAD on a non-default branch", Push{RepoURLs: push.RepoURLs, Ref: "refs/heads/feature", DefaultBranch: "main"},
			Source{RepoURL: "https://github.com/platform/apps"}, false},
		{"paths: relative hit", push, Source{RepoURL: "https://github.com/platform/apps", Revision: "main",
			Path: "apps/orders-api/overlays/dev", Paths: "."}, true},
		{"paths: relative miss", push, Source{RepoURL: "https://github.com/platform/apps", Revision: "main",
			Path: "apps/orders-api/overlays/prod", Paths: "."}, false},
		{"paths: base via ..", push, Source{RepoURL: "https://github.com/platform/apps", Revision: "main",
			Path: "apps/orders-api/overlays/prod", Paths: ".;../../base"}, true},
		{"paths: absolute", push, Source{RepoURL: "https://github.com/platform/apps", Revision: "main",
			Path: "x", Paths: "/apps/orders-api"}, true},
		{"paths unknown to the forge", Push{RepoURLs: push.RepoURLs, Ref: "refs/heads/main"}, Source{RepoURL: "https://github.com/platform/apps",
			Revision: "main", Path: "apps/orders-api/overlays/prod", Paths: "."}, true},
		{"no paths: any change", push, Source{RepoURL: "https://github.com/platform/apps", Revision: "main", Path: "elsewhere"}, true},
		{"tag", tag, Source{RepoURL: "https://github.com/platform/apps", Revision: "v1.3.0"}, true},
		{"other tag", tag, Source{RepoURL: "https://github.com/platform/apps", Revision: "v1.2.0"}, false},
		{"semver range with star", tag, Source{RepoURL: "https://github.com/platform/apps", Revision: "1.*"}, true},
		{"semver: prefix", tag, Source{RepoURL: "https://github.com/platform/apps", Revision: "semver:>=1.0.0"}, true},
		{"tag push, branch tracked", tag, Source{RepoURL: "https://github.com/platform/apps", Revision: "main"}, false},
	} {
		if got := Affects(tc.p, tc.s); got != tc.want {
			t.Errorf("%s: Affects = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCanonical(t *testing.T) {
	same := []string{"https://github.com/Platform/apps.git", "git@github.com:Platform/apps.git", "ssh://git@github.com/Platform/apps", "https://user@GITHUB.com/Platform/apps/"}
	for _, u := range same {
		if Canonical(u) != "github.com/Platform/apps" {
			t.Errorf("Canonical(%q) = %q", u, Canonical(u))
		}
	}
	if Canonical("http://127.0.0.1:3000/a/b.git") == Canonical("http://127.0.0.1:3001/a/b.git") {
		t.Error("ports must keep two forges on one host apart")
	}
	if strings.Contains(Canonical("https://u:secret@h/x"), "secret") {
		t.Error("credentials leak into the canonical form")
	}
}
