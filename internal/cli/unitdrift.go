package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
)

// unitDriftOut is what `converge drift KIND NAME -o json` prints.
type unitDriftOut struct {
	Unit      string                     `json:"unit"`
	Drift     *convergev1.DriftReport    `json:"drift"`
	Overrides []convergev1.DriftOverride `json:"overrides"`
}

// unitDrift prints the drift the controller last recorded for a unit,
// and its overrides; exit 1 when some of it is unexplained.
func unitDrift(cmd *cobra.Command, kindArg, name, namespace string, f unitFlags) error {
	gvr, ok := unitKinds[kindArg]
	if !ok {
		return fmt.Errorf("kind %q: want application or kustomization", kindArg)
	}
	dyn, err := dynamicClient(f.kubeconfig, f.context)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	obj, err := dyn.Resource(gvr).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("%s %s/%s: %w", kindArg, namespace, name, err)
	}
	out := unitDriftOut{Unit: obj.GetKind() + " " + namespace + "/" + name, Overrides: []convergev1.DriftOverride{}}
	if raw, ok, _ := unstructured.NestedMap(obj.Object, "status", "drift"); ok {
		out.Drift = &convergev1.DriftReport{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, out.Drift); err != nil {
			return fmt.Errorf("%s status.drift: %w", out.Unit, err)
		}
	}
	list, err := dyn.Resource(convergev1.GroupVersion.WithResource("driftoverrides")).Namespace(namespace).List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, item := range list.Items {
			var o convergev1.DriftOverride
			if runtime.DefaultUnstructuredConverter.FromUnstructured(item.Object, &o) == nil && o.Spec.Unit.Kind == obj.GetKind() && o.Spec.Unit.Name == name {
				out.Overrides = append(out.Overrides, o)
			}
		}
	}
	if done, err := writeStructured(cmd.OutOrStdout(), f.output, out); done && err != nil {
		return err
	} else if !done {
		printUnitDrift(cmd.OutOrStdout(), out)
	}
	if out.Drift != nil && out.Drift.Unexplained > 0 {
		return exitError{ExitDiff}
	}
	return nil
}

func printUnitDrift(w io.Writer, out unitDriftOut) {
	if out.Drift == nil {
		fmt.Fprintf(w, "%s: no drift at its last comparison\n", out.Unit)
	} else {
		fmt.Fprintf(w, "%s: %s (%d unexplained)\n", out.Unit, out.Drift.Summary, out.Drift.Unexplained)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "OBJECT\tFIELD\tDESIRED\tLIVE\tMANAGER\tCATEGORY\tACTION\tRULE")
		for _, it := range out.Drift.Items {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", it.Object, dash(it.Path), dash(it.Desired), dash(it.Live), dash(it.Manager), it.Category, it.Action, it.Rule)
		}
		tw.Flush()
		if n := out.Drift.Total - len(out.Drift.Items); n > 0 {
			fmt.Fprintf(w, "... and %d more\n", n)
		}
	}
	for _, o := range out.Overrides {
		state := o.Status.Phase
		if state == "" {
			state = "Pending"
		}
		fmt.Fprintf(w, "override %s by %s until %s (%s, then %s): %s", o.Name, dash(o.Spec.RequestedBy), o.Spec.Expires.UTC().Format(time.RFC3339),
			state, orRevert(o.Spec.OnExpiry), o.Spec.Reason)
		if o.Status.Message != "" {
			fmt.Fprintf(w, "; %s", o.Status.Message)
		}
		fmt.Fprintln(w)
	}
}

func orRevert(s string) string {
	if s == "" {
		return "revert"
	}
	return s
}
