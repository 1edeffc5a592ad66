package promotion

import (
	"fmt"
	"strings"
)

// Body markers: the part of a pull request's body converge owns. Text
// people write outside them is kept when converge updates the body.
const (
	BodyBegin = "<!-- converge:begin -->"
	BodyEnd   = "<!-- converge:end -->"
)

// ImageChange is one rendered container whose image moves.
type ImageChange struct {
	// Object is "Deployment orders/orders-api", Container its container.
	Object, Container string
	Old, New          string
}

// Link is an evidence item to show, or a missing one (URI empty).
type Link struct {
	Type, URI, Path string
}

// BodyInput is what the pull request body shows.
type BodyInput struct {
	Pipeline, Stage, From string
	Reason                string
	Risk, RiskWhy         string
	Images                []ImageChange
	Evidence              []Link
	// Deployment is the source stage's observation, the "staging
	// deployment" evidence: which revision runs the digest, healthy since
	// when.
	Deployment string
	Gates      []Result
	// Approvers are who approved; Author is who may not approve alone.
	Approvers []string
	Author    string
	// ApprovalRequired says whether the approval gate is required.
	ApprovalRequired bool
	// Rollback is the rollback contract, if it was computed.
	Rollback *Contract
	// ClusterRollback, for a rollback that makes Git match a stage's
	// cluster, is what the cluster did.
	ClusterRollback string
}

// Body renders the converge part of the pull request body, markers
// included.
func Body(in BodyInput) string {
	var b strings.Builder
	b.WriteString(BodyBegin + "\n")
	fmt.Fprintf(&b, "## Promote %s to %s\n\n", in.Pipeline, in.Stage)
	switch {
	case in.ClusterRollback != "":
		fmt.Fprintf(&b, "**Git follows the cluster.** Stage **%s** was %s. This pins what it runs.\n\n", in.Stage, in.ClusterRollback)
	case in.Reason == "rollback":
		fmt.Fprintf(&b, "A rollback of **%s** to the digests below.\n\n", in.Stage)
	case in.From != "":
		fmt.Fprintf(&b, "The same digests that run in **%s**, promoted to **%s** (%s).\n\n", in.From, in.Stage, in.Reason)
	}
	b.WriteString("```diff\n")
	if len(in.Images) == 0 {
		b.WriteString("# the target's render names none of the pipeline's images\n")
	}
	for _, c := range in.Images {
		fmt.Fprintf(&b, "# %s, container %s\n- image: %s\n+ image: %s\n", c.Object, c.Container, orNone(c.Old), c.New)
	}
	b.WriteString("```\n\n### Evidence\n\n")
	if in.Deployment != "" {
		fmt.Fprintf(&b, "- %s deployment: %s\n", in.From, in.Deployment)
	}
	for _, l := range in.Evidence {
		switch {
		case l.URI != "":
			fmt.Fprintf(&b, "- %s: %s (`%s`)\n", l.Type, l.URI, l.Path)
		case l.Path != "":
			fmt.Fprintf(&b, "- %s: `%s`\n", l.Type, l.Path)
		default:
			fmt.Fprintf(&b, "- %s: **missing**\n", l.Type)
		}
	}
	if c := in.Rollback; c != nil {
		fmt.Fprintf(&b, "\n### Rollback: %s\n\n", c.Mode)
		for _, k := range c.Checks {
			fmt.Fprintf(&b, "- %s: %s: %s\n", k.Dimension, orDefault(k.Mode, "not checked"), k.Message)
		}
		if c.RollForward != "" {
			fmt.Fprintf(&b, "- roll forward: %s\n", c.RollForward)
		}
	}
	fmt.Fprintf(&b, "\n### Gates (risk %s: %s)\n\n", in.Risk, in.RiskWhy)
	for _, g := range in.Gates {
		box := " "
		if g.Phase == Passed {
			box = "x"
		}
		fmt.Fprintf(&b, "- [%s] **%s** (%s, %s): %s\n", box, g.Name, g.Requirement, g.Phase, g.Message)
	}
	v, msg := Verdict(in.Gates)
	fmt.Fprintf(&b, "\n`converge/promotion`: **%s**: %s\n\n### Approvers\n\n", v, msg)
	switch {
	case len(in.Approvers) > 0:
		fmt.Fprintf(&b, "Approved by %s.\n", strings.Join(in.Approvers, ", "))
	case in.ApprovalRequired:
		fmt.Fprintf(&b, "Needs an approving review from someone other than %s.\n", in.Author)
	default:
		b.WriteString("No approval required at this risk.\n")
	}
	b.WriteString(BodyEnd + "\n")
	return b.String()
}

// Splice replaces the converge part of an existing body with part,
// keeping what people wrote around it; a body without one gets it
// appended.
func Splice(body, part string) string {
	i := strings.Index(body, BodyBegin)
	j := strings.Index(body, BodyEnd)
	if i < 0 || j < i {
		if body == "" {
			return part
		}
		return strings.TrimRight(body, "\n") + "\n\n" + part
	}
	rest := body[j+len(BodyEnd):]
	rest = strings.TrimPrefix(rest, "\n")
	return body[:i] + part + rest
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
