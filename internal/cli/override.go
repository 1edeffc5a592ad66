package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kwait "k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
)

func newOverrideCmd() *cobra.Command {
	var kubeconfig, kcontext, namespace, object, reason, until, onExpiry string
	var paths []string
	var hold, wait time.Duration
	cmd := &cobra.Command{
		Use:   "override (application|kustomization) NAME --object KIND/NAME --path P --reason TEXT (--for D | --until T)",
		Short: "Let some live fields of a unit differ from Git for a while (an emergency override)",
		Long: `Override records a DriftOverride: until it expires, the controller leaves
the named fields of the named objects of one unit as they are live, even
under selfHeal or a DriftPolicy forbid rule, and reports them as
emergency-manual drift. Who asked is read from the API server
(SelfSubjectReview), not from the command line. At expiry the controller
reverts the fields (--on-expiry revert, the default), or opens a pull
request writing their live values into Git and keeps them until it is
merged (--on-expiry backport), and says which in the override's status.

--object is KIND/NAME or group/KIND/NAME (apps/Deployment/web); --path is
a DriftPolicy path (/spec/template/spec/containers/*/image), repeatable;
no --path holds every field of the object.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, ok := map[string]string{"application": "Application", "kustomization": "Kustomization"}[args[0]]
			if !ok {
				return fmt.Errorf("kind %q: want application or kustomization", args[0])
			}
			rule, err := overrideRule(object, paths)
			if err != nil {
				return err
			}
			if strings.TrimSpace(reason) == "" {
				return fmt.Errorf("--reason is required: an override is read later by whoever backports or reverts it")
			}
			expires, err := expiry(hold, until, time.Now())
			if err != nil {
				return err
			}
			cfg, err := restConfig(kubeconfig, kcontext)
			if err != nil {
				return err
			}
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			who, err := cs.AuthenticationV1().SelfSubjectReviews().Create(cmd.Context(), &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("who is asking (SelfSubjectReview): %w", err)
			}
			o := &convergev1.DriftOverride{
				TypeMeta:   metav1.TypeMeta{APIVersion: convergev1.GroupVersion.String(), Kind: "DriftOverride"},
				ObjectMeta: metav1.ObjectMeta{GenerateName: args[1] + "-override-", Namespace: namespace},
				Spec: convergev1.DriftOverrideSpec{Unit: convergev1.UnitReference{Kind: kind, Name: args[1]}, Rules: []convergev1.DriftRule{rule},
					Reason: reason, Expires: metav1.NewTime(expires), OnExpiry: onExpiry, RequestedBy: who.Status.UserInfo.Username},
			}
			data, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
			if err != nil {
				return err
			}
			dyn, err := dynamicClient(kubeconfig, kcontext)
			if err != nil {
				return err
			}
			gvr := convergev1.GroupVersion.WithResource("driftoverrides")
			out, err := dyn.Resource(gvr).Namespace(namespace).Create(cmd.Context(), &unstructured.Unstructured{Object: data}, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("DriftOverride for %s %s/%s: %w", kind, namespace, args[1], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "driftoverride %s/%s holds %s %s until %s (by %s; then %s)\n", namespace, out.GetName(), object,
				strings.Join(rule.Paths, ","), expires.UTC().Format(time.RFC3339), who.Status.UserInfo.Username, orRevert(onExpiry))
			if wait <= 0 {
				return nil
			}
			// A change made before the controller holds the override is
			// still under the policy (a forbid rule reverts it): say when
			// it is safe to make.
			err = kwait.PollUntilContextTimeout(cmd.Context(), 250*time.Millisecond, wait, true, func(ctx context.Context) (bool, error) {
				o, err := dyn.Resource(gvr).Namespace(namespace).Get(ctx, out.GetName(), metav1.GetOptions{})
				if err != nil {
					return false, nil
				}
				phase, _, _ := unstructured.NestedString(o.Object, "status", "phase")
				return phase == "Active", nil
			})
			if err != nil {
				return fmt.Errorf("driftoverride %s/%s not held by a controller within %s (is converge controller running?)", namespace, out.GetName(), wait)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "held by the controller: make the change now")
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&namespace, "namespace", "n", "argocd", "namespace of the Application or Kustomization")
	fs.StringVar(&object, "object", "", "the object: KIND/NAME or group/KIND/NAME")
	fs.StringArrayVar(&paths, "path", nil, "a field, as a DriftPolicy path (repeatable; none: every field)")
	fs.StringVar(&reason, "reason", "", "why (required)")
	fs.DurationVar(&hold, "for", 0, "how long the override holds")
	fs.StringVar(&until, "until", "", "when it expires (RFC 3339), instead of --for")
	fs.StringVar(&onExpiry, "on-expiry", "", "revert (default) or backport")
	fs.DurationVar(&wait, "wait", 0, "wait this long for the controller to hold the override (status Active) before returning")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&kcontext, "context", "", "kubeconfig context")
	cmd.MarkFlagRequired("object")
	return cmd
}

// overrideRule turns --object and --path into a rule.
func overrideRule(object string, paths []string) (convergev1.DriftRule, error) {
	parts := strings.Split(object, "/")
	var kind, name string
	switch len(parts) {
	case 2:
		kind, name = parts[0], parts[1]
	case 3:
		kind, name = parts[0]+"/"+parts[1], parts[2]
	default:
		return convergev1.DriftRule{}, fmt.Errorf("--object %q: want KIND/NAME or group/KIND/NAME", object)
	}
	for _, p := range paths {
		if !strings.HasPrefix(p, "/") {
			return convergev1.DriftRule{}, fmt.Errorf("--path %q: must start with /", p)
		}
	}
	return convergev1.DriftRule{Kinds: []string{kind}, Names: []string{name}, Paths: paths}, nil
}

func expiry(hold time.Duration, until string, now time.Time) (time.Time, error) {
	switch {
	case hold > 0 && until != "":
		return time.Time{}, fmt.Errorf("--for and --until exclude each other")
	case hold > 0:
		return now.Add(hold), nil
	case until != "":
		t, err := time.Parse(time.RFC3339, until)
		if err != nil {
			return time.Time{}, fmt.Errorf("--until: %w", err)
		}
		if !t.After(now) {
			return time.Time{}, fmt.Errorf("--until %s is not in the future", until)
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("an override needs an expiry: --for D or --until T")
}
