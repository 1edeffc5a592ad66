// Package notify sends converge's events where a Flux Provider says, in
// the shapes Flux's notification-controller sends them: the event as
// JSON to a generic webhook (signed with HMAC-SHA256 for generic-hmac),
// a commit status on Gitea, GitHub or GitLab, a Slack- or Teams-shaped
// message, or an Alertmanager alert. It also decides which Alerts an
// event matches. It does not log: Send returns what went wrong.
package notify

import (
	"path"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"converge.dev/converge/internal/api/fluxcd/notification/v1beta3"
)

// Severities, as Flux names them.
const (
	SeverityInfo  = "info"
	SeverityError = "error"
)

// Event is Flux's event (fluxcd/pkg/apis/event/v1), the body a generic
// webhook receives.
type Event struct {
	InvolvedObject corev1.ObjectReference `json:"involvedObject"`
	Severity       string                 `json:"severity"`
	Timestamp      metav1.Time            `json:"timestamp"`
	Message        string                 `json:"message"`
	Reason         string                 `json:"reason"`
	// Metadata holds "<group>/revision" (the source revision, as Flux's
	// controllers key it) and the Alert's eventMetadata.
	Metadata            map[string]string `json:"metadata,omitempty"`
	ReportingController string            `json:"reportingController"`
	ReportingInstance   string            `json:"reportingInstance,omitempty"`
}

// RevisionKey is the metadata key of the revision of an object of group.
func RevisionKey(group string) string { return group + "/revision" }

// Revision is the event's revision, if it has one.
func (e Event) Revision() string {
	return e.Metadata[RevisionKey(e.InvolvedObject.GroupVersionKind().Group)]
}

// shaRE finds a Git commit in a revision ("main@sha1:<sha>", "<sha>").
var shaRE = regexp.MustCompile(`(?:^|[@:/])([0-9a-f]{40}|[0-9a-f]{64})$`)

// Commit is the Git commit of the event's revision, if it names one.
func (e Event) Commit() string {
	m := shaRE.FindStringSubmatch(e.Revision())
	if m == nil {
		return ""
	}
	return m[1]
}

// Source is what an Alert matches an event's object by.
type Source struct {
	Kind, Namespace, Name string
	Labels                map[string]string
}

// Matches reports whether alert (in namespace alertNS) sends an event of
// severity from src. It assumes the alert's regular expressions compile
// (CheckAlert says whether they do); one that does not matches nothing.
func Matches(alert v1beta3.AlertSpec, alertNS string, src Source, e Event) bool {
	if alert.Suspend || (alert.EventSeverity == SeverityError && e.Severity != SeverityError) {
		return false
	}
	found := false
	for _, s := range alert.EventSources {
		ns := s.Namespace
		if ns == "" {
			ns = alertNS
		}
		if s.Kind != src.Kind || (ns != "*" && ns != src.Namespace) {
			continue
		}
		if s.Name == "*" && len(s.MatchLabels) > 0 {
			if !labels.SelectorFromSet(s.MatchLabels).Matches(labels.Set(src.Labels)) {
				continue
			}
		} else if ok, _ := path.Match(s.Name, src.Name); !ok {
			continue
		}
		found = true
		break
	}
	if !found {
		return false
	}
	if len(alert.InclusionList) > 0 && !anyMatch(alert.InclusionList, e.Message) {
		return false
	}
	return !anyMatch(alert.ExclusionList, e.Message)
}

func anyMatch(exprs []string, s string) bool {
	for _, x := range exprs {
		if re, err := regexp.Compile(x); err == nil && re.MatchString(s) {
			return true
		}
	}
	return false
}

// WithAlert is e as alert sends it: its eventMetadata and summary added,
// the event's own keys winning, as in Flux.
func WithAlert(e Event, alert v1beta3.AlertSpec) Event {
	if len(alert.EventMetadata) == 0 && alert.Summary == "" {
		return e
	}
	md := map[string]string{}
	if alert.Summary != "" {
		md["summary"] = alert.Summary
	}
	for k, v := range alert.EventMetadata {
		md[k] = v
	}
	for k, v := range e.Metadata {
		md[k] = v
	}
	e.Metadata = md
	return e
}

// words splits a CamelCase reason into lower-case words
// ("ReconciliationSucceeded": "reconciliation succeeded").
func words(reason string) string {
	var b strings.Builder
	for i, r := range reason {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return strings.ToLower(b.String())
}
