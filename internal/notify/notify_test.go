package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"converge.dev/converge/internal/api/fluxcd/notification/v1beta3"
)

const sha = "0123456789abcdef0123456789abcdef01234567"

func event(severity, reason string) Event {
	return Event{InvolvedObject: corev1.ObjectReference{APIVersion: "kustomize.toolkit.fluxcd.io/v1", Kind: "Kustomization", Name: "apps", Namespace: "flux-system"},
		Severity: severity, Reason: reason, Message: "Deployment/shop/web configured", Timestamp: metav1.NewTime(time.Unix(1700000000, 0)),
		Metadata:            map[string]string{"kustomize.toolkit.fluxcd.io/revision": "main@sha1:" + sha},
		ReportingController: "converge"}
}

type request struct {
	path   string
	header http.Header
	body   []byte
}

func capture(t *testing.T, status int) (*httptest.Server, chan request) {
	ch := make(chan request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- request{r.URL.Path, r.Header, b}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func TestSend(t *testing.T) {
	for _, tc := range []struct {
		name, typ, path, token string
		ev                     Event
		check                  func(t *testing.T, r request)
	}{
		{name: "generic", typ: Generic, path: "/hook", ev: event(SeverityInfo, "ReconciliationSucceeded"), check: func(t *testing.T, r request) {
			var e Event
			if err := json.Unmarshal(r.body, &e); err != nil || e.InvolvedObject.Name != "apps" || e.Revision() != "main@sha1:"+sha {
				t.Errorf("body %s: %v", r.body, err)
			}
			if r.header.Get("gotk-component") != "converge" || r.header.Get("X-Signature") != "" {
				t.Errorf("headers %v", r.header)
			}
		}},
		{name: "generic-hmac", typ: GenericHMAC, token: "hmac-key", path: "/hook", ev: event(SeverityError, "HealthCheckFailed"), check: func(t *testing.T, r request) {
			m := hmac.New(sha256.New, []byte("hmac-key"))
			m.Write(r.body)
			if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); r.header.Get("X-Signature") != want {
				t.Errorf("X-Signature %q, want %q", r.header.Get("X-Signature"), want)
			}
		}},
		{name: "gitea", typ: Gitea, token: "tok", path: "/org/app.git", ev: event(SeverityError, "HealthCheckFailed"), check: func(t *testing.T, r request) {
			if r.path != "/api/v1/repos/org/app/statuses/"+sha || r.header.Get("Authorization") != "token tok" {
				t.Errorf("%s %v", r.path, r.header)
			}
			if !strings.Contains(string(r.body), `"state":"failure"`) || !strings.Contains(string(r.body), `"context":"kustomization/apps"`) ||
				!strings.Contains(string(r.body), `"description":"health check failed"`) {
				t.Errorf("body %s", r.body)
			}
		}},
		{name: "gitlab", typ: GitLab, token: "tok", path: "/group/app", ev: event(SeverityInfo, "Progressing"), check: func(t *testing.T, r request) {
			if r.path != "/api/v4/projects/group/app/statuses/"+sha || r.header.Get("PRIVATE-TOKEN") != "tok" || !strings.Contains(string(r.body), `"state":"running"`) {
				t.Errorf("%s %v %s", r.path, r.header, r.body)
			}
		}},
		{name: "github enterprise", typ: GitHub, token: "tok", path: "/org/app", ev: event(SeverityInfo, "ReconciliationSucceeded"), check: func(t *testing.T, r request) {
			if r.path != "/api/v3/repos/org/app/statuses/"+sha || r.header.Get("Authorization") != "Bearer tok" || !strings.Contains(string(r.body), `"state":"success"`) {
				t.Errorf("%s %v %s", r.path, r.header, r.body)
			}
		}},
		{name: "slack", typ: Slack, path: "/services/T000/B000/XXXX", ev: event(SeverityError, "BuildFailed"), check: func(t *testing.T, r request) {
			var m struct {
				Channel     string `json:"channel"`
				Attachments []struct {
					Color string `json:"color"`
				} `json:"attachments"`
			}
			if err := json.Unmarshal(r.body, &m); err != nil || m.Channel != "#ops" || len(m.Attachments) != 1 || m.Attachments[0].Color != "danger" {
				t.Errorf("body %s", r.body)
			}
		}},
		{name: "msteams", typ: MSTeams, path: "/webhook", ev: event(SeverityInfo, "ReconciliationSucceeded"), check: func(t *testing.T, r request) {
			if !strings.Contains(string(r.body), `"application/vnd.microsoft.card.adaptive"`) || !strings.Contains(string(r.body), "kustomization/apps.flux-system") {
				t.Errorf("body %s", r.body)
			}
		}},
		{name: "alertmanager", typ: Alertmanager, path: "/api/v2/alerts", ev: event(SeverityError, "HealthCheckFailed"), check: func(t *testing.T, r request) {
			var as []struct {
				Labels map[string]string `json:"labels"`
			}
			if err := json.Unmarshal(r.body, &as); err != nil || len(as) != 1 || as[0].Labels["alertname"] != "FluxKustomizationHealthCheckFailed" {
				t.Errorf("body %s", r.body)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, ch := capture(t, http.StatusCreated)
			err := Send(context.Background(), Target{Type: tc.typ, Address: srv.URL + tc.path, Token: tc.token, Channel: "#ops"}, tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, <-ch)
		})
	}
}

func TestSendErrors(t *testing.T) {
	srv, _ := capture(t, http.StatusInternalServerError)
	err := Send(context.Background(), Target{Type: Slack, Address: srv.URL + "/services/T000/B000/SECRETPATH"}, event(SeverityInfo, "X"))
	var se *SendError
	if !asSendError(err, &se) || se.Status != 500 || !se.Temporary() || strings.Contains(err.Error(), "SECRETPATH") {
		t.Errorf("error %v: want a temporary 500 without the webhook's path", err)
	}
	err = Send(context.Background(), Target{Type: Slack, Address: "http://127.0.0.1:1/services/SECRETPATH"}, event(SeverityInfo, "X"))
	if err == nil || strings.Contains(err.Error(), "SECRETPATH") {
		t.Errorf("error %v: want one without the webhook's path", err)
	}
	ev := event(SeverityInfo, "X")
	ev.Metadata = map[string]string{"helm.toolkit.fluxcd.io/revision": "1.2.3"}
	if err := Send(context.Background(), Target{Type: Gitea, Address: srv.URL + "/o/r", Token: "t"}, ev); err != ErrNoCommit {
		t.Errorf("a chart version: %v, want ErrNoCommit", err)
	}
	for _, tc := range []struct {
		t    Target
		want string
	}{
		{Target{Type: "discord", Address: "http://x"}, `spec.type "discord" is not supported`},
		{Target{Type: Generic}, "spec.address"},
		{Target{Type: GenericHMAC, Address: "http://x/h"}, "token key"},
		{Target{Type: Gitea, Address: "http://x/onlyowner", Token: "t"}, "want the repository's URL"},
		{Target{Type: Generic, Address: "http://x", CA: []byte("nope")}, "no PEM certificate"},
	} {
		if err := Check(tc.t); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check(%+v) = %v, want %q", tc.t, err, tc.want)
		}
	}
}

func asSendError(err error, out **SendError) bool {
	se, ok := err.(*SendError)
	*out = se
	return ok
}

func TestMatches(t *testing.T) {
	src := Source{Kind: "Kustomization", Namespace: "flux-system", Name: "apps-prod", Labels: map[string]string{"team": "shop"}}
	for _, tc := range []struct {
		name  string
		alert v1beta3.AlertSpec
		ev    Event
		want  bool
	}{
		{"name", v1beta3.AlertSpec{EventSources: []v1beta3.CrossNamespaceObjectReference{{Kind: "Kustomization", Name: "apps-prod"}}}, event(SeverityInfo, "X"), true},
		{"wildcard", v1beta3.AlertSpec{EventSources: []v1beta3.CrossNamespaceObjectReference{{Kind: "Kustomization", Name: "apps-*"}}}, event(SeverityInfo, "X"), true},
		{"other kind", v1beta3.AlertSpec{EventSources: []v1beta3.CrossNamespaceObjectReference{{Kind: "HelmRelease", Name: "*"}}}, event(SeverityInfo, "X"), false},
		{"other namespace", v1beta3.AlertSpec{EventSources: []v1beta3.CrossNamespaceObjectReference{{Kind: "Kustomization", Name: "*", Namespace: "team-b"}}}, event(SeverityInfo, "X"), false},
		{"any namespace", v1beta3.AlertSpec{EventSources: []v1beta3.CrossNamespaceObjectReference{{Kind: "Kustomization", Name: "*", Namespace: "*"}}}, event(SeverityInfo, "X"), true},
		{"labels", v1beta3.AlertSpec{EventSources: []v1beta3.CrossNamespaceObjectReference{{Kind: "Kustomization", Name: "*", MatchLabels: map[string]string{"team": "shop"}}}}, event(SeverityInfo, "X"), true},
		{"other labels", v1beta3.AlertSpec{EventSources: []v1beta3.CrossNamespaceObjectReference{{Kind: "Kustomization", Name: "*", MatchLabels: map[string]string{"team": "ops"}}}}, event(SeverityInfo, "X"), false},
		{"errors only, info", v1beta3.AlertSpec{EventSeverity: "error", EventSources: []v1beta3.CrossNamespaceObjectReference{{Kind: "Kustomization", Name: "*"}}}, event(SeverityInfo, "X"), false},
		{"errors only, error", v1beta3.AlertSpec{EventSeverity: "error", EventSources: []v1beta3.CrossNamespaceObjectReference{{Kind: "Kustomization", Name: "*"}}}, event(SeverityError, "X"), true},
		{"inclusion", v1beta3.AlertSpec{InclusionList: []string{"^Deployment/"}, EventSources: []v1beta3.CrossNamespaceObjectReference{{Kind: "Kustomization", Name: "*"}}}, event(SeverityInfo, "X"), true},
		{"inclusion misses", v1beta3.AlertSpec{InclusionList: []string{"^Service/"}, EventSources: []v1beta3.CrossNamespaceObjectReference{{Kind: "Kustomization", Name: "*"}}}, event(SeverityInfo, "X"), false},
		{"exclusion", v1beta3.AlertSpec{ExclusionList: []string{"configured$"}, EventSources: []v1beta3.CrossNamespaceObjectReference{{Kind: "Kustomization", Name: "*"}}}, event(SeverityInfo, "X"), false},
		{"suspended", v1beta3.AlertSpec{Suspend: true, EventSources: []v1beta3.CrossNamespaceObjectReference{{Kind: "Kustomization", Name: "*"}}}, event(SeverityInfo, "X"), false},
	} {
		if got := Matches(tc.alert, "flux-system", src, tc.ev); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	e := WithAlert(event(SeverityInfo, "X"), v1beta3.AlertSpec{Summary: "prod", EventMetadata: map[string]string{"env": "prod", "kustomize.toolkit.fluxcd.io/revision": "mine"}})
	if e.Metadata["summary"] != "prod" || e.Metadata["env"] != "prod" || e.Revision() != "main@sha1:"+sha {
		t.Errorf("metadata %v: want summary and env added, the event's revision kept", e.Metadata)
	}
}
