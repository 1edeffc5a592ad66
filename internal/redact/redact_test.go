package redact

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"https://ghp_TOKEN123@github.com/org/repo.git", "https://redacted@github.com/org/repo.git"},
		{"http://alice:s3cret@127.0.0.1:3000/org/app.git", "http://redacted@127.0.0.1:3000/org/app.git"},
		{"https://oauth2:glpat-abc@gitlab.com/x.git", "https://redacted@gitlab.com/x.git"},
		{"ssh://git@github.com/org/repo.git", "ssh://git@github.com/org/repo.git"},
		{"ssh://git:pw@github.com/org/repo.git", "ssh://redacted@github.com/org/repo.git"},
		{"oci://user:pw@registry.example/charts", "oci://redacted@registry.example/charts"},
		{"https://github.com/org/repo.git", "https://github.com/org/repo.git"},
		{"file:///tmp/repo.git", "file:///tmp/repo.git"},
	}
	for _, c := range cases {
		if got := URL(c.in); got != c.want {
			t.Errorf("URL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestText(t *testing.T) {
	cases := []struct{ in, want string }{
		{`git http://TOKEN@host/a.git: revision not found`, `git http://redacted@host/a.git: revision not found`},
		{`Get "https://u:p@h/x/info/refs?service=git-upload-pack": EOF`, `Get "https://redacted@h/x/info/refs?service=git-upload-pack": EOF`},
		{`two: https://a@x/1 and http://b:c@y/2`, `two: https://redacted@x/1 and http://redacted@y/2`},
		{`ssh://git@github.com/o/r.git kept`, `ssh://git@github.com/o/r.git kept`},
		{`mail alice@example.com is no URL`, `mail alice@example.com is no URL`},
		{`path https://host/a@b is no userinfo`, `path https://host/a@b is no userinfo`},
	}
	for _, c := range cases {
		if got := Text(c.in); got != c.want {
			t.Errorf("Text(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzText(f *testing.F) {
	f.Add("https://TOKEN@host/x")
	f.Add("x http://a:b@c/d y")
	f.Fuzz(func(t *testing.T, s string) {
		out := Text(s)
		// Whatever user information was found is gone: redacting twice
		// changes nothing more.
		if Text(out) != out {
			t.Errorf("Text is not idempotent on %q", s)
		}
		if !strings.Contains(s, "@") && out != s {
			t.Errorf("text without @ changed: %q -> %q", s, out)
		}
	})
}

func TestMessageFitsACondition(t *testing.T) {
	long := strings.Repeat("é", 40000) + " https://TOKEN@host/x"
	got := Message(long)
	if len(got) > MaxMessage {
		t.Errorf("%d bytes, want at most %d", len(got), MaxMessage)
	}
	if !strings.Contains(got, "more bytes left out") || !utf8.ValidString(got) {
		t.Errorf("cut message: %q", got[len(got)-80:])
	}
	if got := Message("short https://TOKEN@host/x"); got != "short https://redacted@host/x" {
		t.Errorf("got %q", got)
	}
}
