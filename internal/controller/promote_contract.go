package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/promotion"
	"converge.dev/converge/internal/source/oci"
)

// contract is the rollback contract of a promotion (seed §15): could the
// stage go back to what it runs before the merge? Going back means the
// base's render (what the stage is reconciled to now) with the images
// the stage ran before; for a rollback promotion it means the base's
// render with the freight's images, which is where it goes. heads are
// the targets' renders at the pull request head, to see what the change
// does to infrastructure; nil when the promotion commit is being written
// (it changes the image references only). migrations are the
// migration evidence of the digests the merge brings. bases are the
// targets rendered at base.
func (run *pipelineRun) contract(ctx context.Context, promo *convergev1.Promotion, s convergev1.PipelineStage, base string, bases renders,
	heads map[convergev1.StageTarget]targetRender, migrations []string, rollForward string) promotion.Contract {
	back := artifactsOf(convergev1.Freight{Artifacts: promo.Status.Previous})
	if promo.Spec.Reason == "rollback" {
		back = artifactsOf(promo.Spec.Freight)
	}
	checks := []promotion.Check{run.imageCheck(ctx, back)}
	var config, unserved, refused, cloud []string
	failed := append([]string(nil), bases.failed...)
	for _, t := range s.Targets {
		tr, ok := bases.by[t]
		if !ok {
			continue
		}
		objs := objectsOf(tr.objects, tr.related)
		in := map[string]bool{}
		for _, o := range objs {
			in[o.GetKind()+" "+nsName(o, tr.namespace)] = true
		}
		for _, ref := range promotion.ConfigRefs(objs, tr.namespace) {
			if ref.Optional || in[ref.String()] {
				continue
			}
			gone, err := run.absent(ctx, ref)
			switch {
			case err != nil:
				failed = append(failed, fmt.Sprintf("%s: %v", ref, err))
			case gone:
				config = append(config, ref.String())
			}
		}
		kinds, err := run.r.Engine.Unserved(ctx, append(append([]object.Decoded{}, tr.objects...), tr.related...))
		if err != nil {
			failed = append(failed, err.Error())
		}
		unserved = append(unserved, kinds...)
		// Every object is sent, changed or not: today's admission judges
		// the whole render a revert would apply.
		if err := run.r.Engine.Admit(ctx, tr.objects, tr.namespace); err != nil {
			refused = append(refused, fmt.Sprintf("%s %s/%s: %v", t.Kind, t.Namespace, t.Name, err))
		}
		if err := run.r.Engine.Admit(ctx, tr.related, tr.relatedNamespace); err != nil {
			refused = append(refused, fmt.Sprintf("%s %s/%s's unit: %v", t.Kind, t.Namespace, t.Name, err))
		}
		if head, ok := heads[t]; ok {
			cloud = append(cloud, promotion.CloudTouched(objs, objectsOf(head.objects, head.related))...)
		}
	}
	unchecked := func(dim string) promotion.Check {
		return promotion.Check{Dimension: dim, Message: "the base " + short(base, 12) + " could not be read: " + strings.Join(failed, "; ")}
	}
	if len(failed) > 0 {
		checks = append(checks, unchecked(promotion.DimConfig), unchecked(promotion.DimManifest))
	} else {
		checks = append(checks, listCheck(promotion.DimConfig, config, promotion.RollbackManual,
			"every ConfigMap and Secret the render reads exists or is in it", "missing: "),
			listCheck(promotion.DimManifest, unserved, promotion.RollbackImpossible,
				"every kind of the render is still served", "no longer served, so a revert cannot apply: "))
	}
	checks = append(checks, promotion.DatabaseCheck(migrations))
	switch {
	case heads == nil:
		checks = append(checks, promotion.Check{Dimension: promotion.DimCloud, Mode: promotion.RollbackAutomatic, Message: "the promotion commit changes only image references"})
	default:
		checks = append(checks, listCheck(promotion.DimCloud, cloud, promotion.RollbackManual,
			"no load balancer, ingress class or storage class changes", "rollback may not restore infrastructure: "))
	}
	if len(failed) > 0 {
		checks = append(checks, unchecked(promotion.DimPolicy))
	} else {
		checks = append(checks, listCheck(promotion.DimPolicy, refused, promotion.RollbackManual,
			"today's admission accepts the render (server-side dry run)", "today's admission refuses the render: "))
	}
	return promotion.Judge(checks, rollForward)
}

// listCheck is automatic with ok when list is empty, else mode with
// prefix and the list.
func listCheck(dim string, list []string, mode, ok, prefix string) promotion.Check {
	if len(list) == 0 {
		return promotion.Check{Dimension: dim, Mode: promotion.RollbackAutomatic, Message: ok}
	}
	return promotion.Check{Dimension: dim, Mode: mode, Message: prefix + strings.Join(list, ", ")}
}

// imageCheck asks the registry whether the digests to go back to are
// all still there.
func (run *pipelineRun) imageCheck(ctx context.Context, back []promotion.Artifact) promotion.Check {
	c := promotion.Check{Dimension: promotion.DimImage, Mode: promotion.RollbackAutomatic}
	if len(back) == 0 {
		c.Mode, c.Message = promotion.RollbackManual, "the stage ran no pinned digest before: there is no image to go back to"
		return c
	}
	var gone, unknown, there []string
	for _, a := range back {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		missing, err := run.r.Engine.MissingOCI(rctx, "oci://"+a.Image, a.Digest, oci.Auth{Insecure: loopback(a.Image)})
		cancel()
		switch {
		case err != nil:
			unknown = append(unknown, fmt.Sprintf("%s@%s: %v", a.Image, promotion.ShortID(a.Digest), err))
		case len(missing) > 0:
			gone = append(gone, strings.Join(missing, ", "))
		default:
			there = append(there, a.Image+"@"+promotion.ShortID(a.Digest))
		}
	}
	switch {
	case len(gone) > 0:
		c.Mode, c.Refuse, c.Message = promotion.RollbackManual, true, "old image digest deleted from the registry: "+strings.Join(gone, ", ")
	case len(unknown) > 0:
		// Manual, not unchecked: a registry the controller cannot read
		// (private, no credentials here) would otherwise hold every
		// high-risk promotion forever. A person checks before relying on
		// a rollback, and the contract says so.
		c.Mode, c.Message = promotion.RollbackManual, "cannot tell whether the old digest is in the registry, check it by hand: "+strings.Join(unknown, "; ")
	default:
		c.Message = "the old digests are in the registry: " + strings.Join(there, ", ")
	}
	return c
}

// absent says whether a ConfigMap or Secret is gone from the cluster.
// Only its metadata is read: a Secret's data never leaves the API
// server for this.
func (run *pipelineRun) absent(ctx context.Context, ref promotion.ConfigRef) (bool, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: ref.Kind})
	err := run.r.Reader.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, m)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	return false, err
}

// rollbackEvidence is what the evidence says about going back: each
// migration's verdict, and the roll-forward plan.
func rollbackEvidence(found []foundEvidence) (migrations []string, rollForward string) {
	for _, f := range found {
		switch f.item.Type {
		case "migration":
			migrations = append(migrations, f.item.Migration)
		case "rollback-plan":
			if f.item.RollForward != "" {
				rollForward = f.item.RollForward
			}
		}
	}
	return migrations, rollForward
}

// renders are a stage's targets rendered at one revision; failed names
// those that could not be.
type renders struct {
	by     map[convergev1.StageTarget]targetRender
	failed []string
}

// rendersAt renders each target at rev once, for every check that
// compares with it.
func (run *pipelineRun) rendersAt(ctx context.Context, s convergev1.PipelineStage, rev string) renders {
	out := renders{by: map[convergev1.StageTarget]targetRender{}}
	for _, t := range s.Targets {
		tr, err := run.targetAt(ctx, t, rev)
		if err != nil {
			out.failed = append(out.failed, err.Error())
			continue
		}
		out.by[t] = tr
	}
	return out
}
