package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// Provider types converge sends to.
const (
	Generic      = "generic"
	GenericHMAC  = "generic-hmac"
	Gitea        = "gitea"
	GitHub       = "github"
	GitLab       = "gitlab"
	Slack        = "slack"
	MSTeams      = "msteams"
	Alertmanager = "alertmanager"
)

// Types lists the supported provider types.
var Types = []string{Generic, GenericHMAC, Gitea, GitHub, GitLab, Slack, MSTeams, Alertmanager}

// IsCommitStatus reports whether typ posts commit statuses: it sends
// only events whose revision names a commit.
func IsCommitStatus(typ string) bool { return typ == Gitea || typ == GitHub || typ == GitLab }

// Target is a Provider resolved with its Secrets.
type Target struct {
	Type string
	// Address is the URL posted to; for commit statuses the repository.
	Address string
	// Channel and Username are Slack's.
	Channel, Username string
	// Token signs generic-hmac bodies, authenticates commit statuses, and
	// is a bearer token for Slack's API.
	Token string
	// Headers are added to generic webhooks' requests.
	Headers map[string]string
	// Proxy is an HTTP proxy's URL.
	Proxy string
	// CA, if set, is the only CA the address's certificate may chain to.
	CA []byte
	// Timeout bounds one delivery; if zero, 15s.
	Timeout time.Duration
	// CommitStatusID is the commit status's context (its key on the
	// commit, which later statuses of the same object replace).
	CommitStatusID string
}

// ErrNoCommit is an event a commit status provider cannot place: its
// revision names no commit.
var ErrNoCommit = errors.New("the event's revision names no commit")

// Check says what makes t unusable, naming the field.
func Check(t Target) error {
	if !slices.Contains(Types, t.Type) {
		return fmt.Errorf("spec.type %q is not supported by converge (supported: %s)", t.Type, strings.Join(Types, ", "))
	}
	if t.Address == "" {
		return errors.New("spec.address (or the secret's address key) is required")
	}
	u, err := url.Parse(t.Address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("spec.address is not an http(s) URL")
	}
	if (t.Type == GenericHMAC || IsCommitStatus(t.Type)) && t.Token == "" {
		return fmt.Errorf("a %s provider needs the token key in spec.secretRef's Secret", t.Type)
	}
	if IsCommitStatus(t.Type) {
		if _, _, err := repoOf(t.Address); err != nil {
			return err
		}
	}
	if t.Proxy != "" {
		if _, err := url.Parse(t.Proxy); err != nil {
			return errors.New("spec.proxy is not a URL")
		}
	}
	if len(t.CA) > 0 && !x509.NewCertPool().AppendCertsFromPEM(t.CA) {
		return errors.New("spec.certSecretRef: ca.crt holds no PEM certificate")
	}
	return nil
}

// Send delivers e to t. Errors name the provider type and host, never
// the token or the address's path (a Slack webhook's secret).
func Send(ctx context.Context, t Target, e Event) error {
	if err := Check(t); err != nil {
		return err
	}
	switch t.Type {
	case Generic, GenericHMAC:
		body, err := json.Marshal(e)
		if err != nil {
			return err
		}
		h := map[string]string{"gotk-component": e.ReportingController}
		for k, v := range t.Headers {
			h[k] = v
		}
		if t.Type == GenericHMAC {
			m := hmac.New(sha256.New, []byte(t.Token))
			m.Write(body)
			h["X-Signature"] = "sha256=" + hex.EncodeToString(m.Sum(nil))
		}
		return post(ctx, t, t.Address, body, h)
	case Gitea, GitHub, GitLab:
		return commitStatus(ctx, t, e)
	case Slack:
		return postJSON(ctx, t, t.Address, slackMessage(t, e), bearer(t.Token))
	case MSTeams:
		return postJSON(ctx, t, t.Address, teamsCard(e), nil)
	case Alertmanager:
		return postJSON(ctx, t, t.Address, alerts(e), nil)
	}
	return fmt.Errorf("provider type %q is not supported", t.Type)
}

func bearer(token string) map[string]string {
	if token == "" {
		return nil
	}
	return map[string]string{"Authorization": "Bearer " + token}
}

func postJSON(ctx context.Context, t Target, addr string, v any, headers map[string]string) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return post(ctx, t, addr, body, headers)
}

// post sends body; a status over 299 is an error carrying the status
// (a permanent one if under 500 and not 429, which retrying won't fix).
func post(ctx context.Context, t Target, addr string, body []byte, headers map[string]string) error {
	u, err := url.Parse(addr)
	if err != nil {
		return fmt.Errorf("%s provider: bad address", t.Type)
	}
	timeout := t.Timeout
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if t.Proxy != "" {
		p, err := url.Parse(t.Proxy)
		if err != nil {
			return fmt.Errorf("%s provider: bad proxy", t.Type)
		}
		tr.Proxy = http.ProxyURL(p)
	}
	if len(t.CA) > 0 {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(t.CA)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	client := &http.Client{Transport: tr, Timeout: timeout}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, addr, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s provider: %w", t.Type, err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		// The error quotes the whole URL.
		return &SendError{Type: t.Type, Host: u.Host, Err: errors.New(strings.ReplaceAll(err.Error(), addr, u.Scheme+"://"+u.Host))}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode > 299 {
		return &SendError{Type: t.Type, Host: u.Host, Status: resp.StatusCode}
	}
	return nil
}

// SendError is a failed delivery.
type SendError struct {
	Type, Host string
	// Status is the HTTP status, or 0 if there was no answer.
	Status int
	Err    error
}

func (e *SendError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%s provider: POST to %s: status %d", e.Type, e.Host, e.Status)
	}
	return fmt.Sprintf("%s provider: POST to %s: %v", e.Type, e.Host, e.Err)
}

// Temporary reports whether retrying may help: no answer, 429 or 5xx.
func (e *SendError) Temporary() bool {
	return e.Status == 0 || e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// title is "kind/name.namespace", lower case, as Flux's messages start.
func title(e Event) string {
	o := e.InvolvedObject
	return strings.ToLower(o.Kind) + "/" + o.Name + "." + o.Namespace
}

func sortedMetadata(e Event) []string {
	keys := make([]string, 0, len(e.Metadata))
	for k := range e.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func slackMessage(t Target, e Event) map[string]any {
	color := "good"
	if e.Severity == SeverityError {
		color = "danger"
	}
	var fields []map[string]any
	for _, k := range sortedMetadata(e) {
		fields = append(fields, map[string]any{"title": k, "value": e.Metadata[k], "short": false})
	}
	msg := map[string]any{"attachments": []map[string]any{{"color": color, "author_name": title(e), "text": e.Message,
		"mrkdwn_in": []string{"text"}, "fields": fields}}}
	if t.Channel != "" {
		msg["channel"] = t.Channel
	}
	if t.Username != "" {
		msg["username"] = t.Username
	}
	return msg
}

func teamsCard(e Event) map[string]any {
	body := []map[string]any{
		{"type": "TextBlock", "text": title(e), "weight": "bolder", "size": "medium", "wrap": true,
			"color": map[bool]string{true: "attention", false: "good"}[e.Severity == SeverityError]},
		{"type": "TextBlock", "text": e.Message, "wrap": true},
	}
	var facts []map[string]string
	for _, k := range sortedMetadata(e) {
		facts = append(facts, map[string]string{"title": k, "value": e.Metadata[k]})
	}
	if len(facts) > 0 {
		body = append(body, map[string]any{"type": "FactSet", "facts": facts})
	}
	return map[string]any{"type": "message", "attachments": []map[string]any{{
		"contentType": "application/vnd.microsoft.card.adaptive",
		"content": map[string]any{"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
			"version": "1.4", "body": body},
	}}}
}

// alerts is Alertmanager's v2 body: one firing alert.
func alerts(e Event) []map[string]any {
	o := e.InvolvedObject
	labels := map[string]string{"alertname": "Flux" + o.Kind + e.Reason, "severity": e.Severity, "reason": e.Reason,
		"kind": o.Kind, "name": o.Name, "namespace": o.Namespace, "reportingController": e.ReportingController}
	annotations := map[string]string{"message": e.Message}
	for k, v := range e.Metadata {
		if k == "summary" {
			annotations["summary"] = v
			continue
		}
		labels[k] = v
	}
	return []map[string]any{{"labels": labels, "annotations": annotations, "status": "firing", "startsAt": e.Timestamp.UTC().Format(time.RFC3339)}}
}
