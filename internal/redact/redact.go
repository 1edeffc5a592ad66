// Package redact removes credentials from text before it leaves the
// process: status conditions, Events, logs, diffs and errors. Every URL's
// user information is replaced, whatever its form: "user:password@",
// a bare token as the user name ("TOKEN@"), or an access token in the
// user name of a scp-like address.
package redact

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Placeholder stands where credentials were.
const Placeholder = "redacted"

// URL returns raw with its user information replaced. An ssh URL keeps a
// user name that carries no password ("git@host"), since ssh
// authenticates with keys and the name says which account is used; any
// other user information is replaced. A string that does not parse as a
// URL goes through Text.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Text(raw)
	}
	if u.User == nil {
		return raw
	}
	_, hasPassword := u.User.Password()
	if !hasPassword && (u.Scheme == "ssh" || u.Scheme == "git+ssh") {
		return raw
	}
	u.User = url.User(Placeholder)
	return u.String()
}

// userinfo matches the user information of a URL inside free text:
// a scheme, "://", then anything up to an "@" that is not a path, a
// space or a quote.
var userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s"'<>]+@`)

// Text replaces the user information of every URL found in s, except a
// plain "git@" or "ssh://git@" user, which names no secret.
func Text(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return userinfo.ReplaceAllStringFunc(s, func(m string) string {
		i := strings.Index(m, "://")
		scheme, user := m[:i+3], strings.TrimSuffix(m[i+3:], "@")
		if (scheme == "ssh://" || scheme == "git+ssh://") && !strings.Contains(user, ":") {
			return m
		}
		return scheme + Placeholder + "@"
	})
}

// MaxMessage is the longest message a status condition holds: the API
// server refuses a metav1.Condition message over 32768 bytes, and a
// status write refused for its size leaves a stale Ready behind.
const MaxMessage = 32768

// Message makes s fit for a condition, an Event or a log line: its
// credentials replaced (Text) and, if longer than MaxMessage, cut with
// a note of how much was left out.
func Message(s string) string {
	s = Text(s)
	if len(s) <= MaxMessage {
		return s
	}
	const room = MaxMessage - 64
	cut := room
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut-- // never split a character
	}
	return fmt.Sprintf("%s... (%d more bytes left out)", s[:cut], len(s)-cut)
}
