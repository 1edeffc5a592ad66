package receiver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"testing"
)

func sign(key, body string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func TestPath(t *testing.T) {
	// `echo -n tokenwebflux-system | sha256sum`
	if got, want := Path("token", "web", "flux-system"), "/hook/210778179ed82deed7f85c2da86405c5f03ee4c81ad0f5b9c3ddb521748343f1"; got != want {
		t.Errorf("path %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	const body = `{"ref":"refs/heads/main"}`
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	for _, tc := range []struct {
		name, typ string
		events    []string
		header    http.Header
		body      string
		want      error
	}{
		{"generic", Generic, nil, h(), body, nil},
		{"hmac", GenericHMAC, nil, h("X-Signature", "sha256="+sign("tok", body)), body, nil},
		{"hmac wrong key", GenericHMAC, nil, h("X-Signature", "sha256="+sign("other", body)), body, ErrUnverified},
		{"hmac missing", GenericHMAC, nil, h(), body, ErrUnverified},
		{"github", GitHub, []string{"push"}, h("X-Hub-Signature-256", "sha256="+sign("tok", body), "X-GitHub-Event", "push"), body, nil},
		{"github other event", GitHub, []string{"push"}, h("X-Hub-Signature-256", "sha256="+sign("tok", body), "X-GitHub-Event", "issues"), body, ErrFiltered},
		{"github tampered", GitHub, nil, h("X-Hub-Signature-256", "sha256="+sign("tok", body)), body + " ", ErrUnverified},
		{"gitea", Gitea, []string{"push"}, h("X-Gitea-Signature", sign("tok", body), "X-Gitea-Event", "push"), body, nil},
		{"gitea unsigned", Gitea, nil, h("X-Gitea-Event", "push"), body, ErrUnverified},
		{"gitlab", GitLab, []string{"Push Hook"}, h("X-Gitlab-Token", "tok", "X-Gitlab-Event", "Push Hook"), body, nil},
		{"gitlab wrong", GitLab, nil, h("X-Gitlab-Token", "nope"), body, ErrUnverified},
		{"harbor", Harbor, nil, h("Authorization", "tok"), body, nil},
		{"harbor wrong", Harbor, nil, h("Authorization", "Bearer tok"), body, ErrUnverified},
		{"cdevents", CDEvents, []string{"dev.cdevents.artifact.published.0.1.1"}, h("Ce-Type", "dev.cdevents.artifact.published.0.1.1"),
			`{"context":{"type":"dev.cdevents.artifact.published.0.1.1"}}`, nil},
		{"cdevents not one", CDEvents, nil, h(), body, ErrUnverified},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.typ, "tok", tc.events, tc.header, []byte(tc.body))
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("%v, want %v", err, tc.want)
			}
		})
	}
	if err := Verify("quay", "tok", nil, http.Header{}, nil); err == nil {
		t.Error("an unsupported type verified")
	}
}
