// Package receiver verifies calls to Flux Receivers
// (notification.toolkit.fluxcd.io/v1): each type's signature or token
// header, and its event filter. It is pure: the HTTP server and the
// reconciles a verified call triggers are the controller's.
package receiver

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // GitHub and generic-hmac senders may still sign with SHA-1
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"slices"
	"strings"
)

// Receiver types converge verifies.
const (
	Generic     = "generic"
	GenericHMAC = "generic-hmac"
	GitHub      = "github"
	GitLab      = "gitlab"
	Gitea       = "gitea"
	Harbor      = "harbor"
	CDEvents    = "cdevents"
)

// Types lists the supported types.
var Types = []string{Generic, GenericHMAC, GitHub, GitLab, Gitea, Harbor, CDEvents}

// Path is a Receiver's webhook path, as Flux documents it:
// /hook/<hex sha256(token+name+namespace)>. It is as secret as the
// token.
func Path(token, name, namespace string) string {
	h := sha256.Sum256([]byte(token + name + namespace))
	return "/hook/" + hex.EncodeToString(h[:])
}

var (
	// ErrUnverified is a call whose signature or token is wrong or
	// missing.
	ErrUnverified = errors.New("unverified")
	// ErrFiltered is a verified call of an event the Receiver does not
	// take.
	ErrFiltered = errors.New("event not taken")
)

// Verify checks a call of body with header h to a Receiver of typ whose
// token is token and whose spec.events are events (empty: all).
func Verify(typ, token string, events []string, h http.Header, body []byte) error {
	var event string
	switch typ {
	case Generic:
		return nil
	case GenericHMAC:
		if !signed(token, body, h.Get("X-Signature")) {
			return fmt.Errorf("%w: bad or missing X-Signature", ErrUnverified)
		}
		return nil
	case GitHub:
		sig := h.Get("X-Hub-Signature-256")
		if sig == "" {
			sig = h.Get("X-Hub-Signature")
		}
		if !signed(token, body, sig) {
			return fmt.Errorf("%w: bad or missing X-Hub-Signature-256", ErrUnverified)
		}
		event = h.Get("X-GitHub-Event")
	case Gitea:
		if !signed(token, body, "sha256="+h.Get("X-Gitea-Signature")) {
			return fmt.Errorf("%w: bad or missing X-Gitea-Signature", ErrUnverified)
		}
		event = h.Get("X-Gitea-Event")
	case GitLab:
		if !same(h.Get("X-Gitlab-Token"), token) {
			return fmt.Errorf("%w: X-Gitlab-Token does not match the token", ErrUnverified)
		}
		event = h.Get("X-Gitlab-Event")
	case Harbor:
		if !same(h.Get("Authorization"), token) {
			return fmt.Errorf("%w: Authorization does not match the token", ErrUnverified)
		}
		return nil
	case CDEvents:
		var ce struct {
			Context struct {
				Type string `json:"type"`
			} `json:"context"`
		}
		if err := json.Unmarshal(body, &ce); err != nil || !strings.HasPrefix(ce.Context.Type, "dev.cdevents.") {
			return fmt.Errorf("%w: the body is not a CDEvent (no context.type dev.cdevents.*)", ErrUnverified)
		}
		event = h.Get("Ce-Type")
		if event == "" {
			event = ce.Context.Type
		}
	default:
		return fmt.Errorf("receiver type %q is not supported (supported: %s)", typ, strings.Join(Types, ", "))
	}
	if len(events) > 0 && !slices.ContainsFunc(events, func(e string) bool { return strings.EqualFold(e, event) }) {
		return fmt.Errorf("%w: %q", ErrFiltered, event)
	}
	return nil
}

func same(a, b string) bool {
	return b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// signed checks "<algo>=<hex HMAC of body>" for sha1, sha256 or sha512.
func signed(token string, body []byte, sig string) bool {
	algo, mac, ok := strings.Cut(sig, "=")
	if !ok || token == "" {
		return false
	}
	var h func() hash.Hash
	switch algo {
	case "sha1":
		h = sha1.New
	case "sha256":
		h = sha256.New
	case "sha512":
		h = sha512.New
	default:
		return false
	}
	got, err := hex.DecodeString(mac)
	if err != nil {
		return false
	}
	m := hmac.New(h, []byte(token))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}
