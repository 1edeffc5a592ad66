package cli_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// kubectlSetImage sends the request `kubectl set image deployment/NAME
// CONTAINER=IMAGE -n NS` sends: a strategic merge patch under the field
// manager kubectl-set, so drift scripts meet a real second writer
// without a kubectl binary on the machine.
func kubectlSetImage(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 || !strings.Contains(args[0], "/") || !strings.Contains(args[1], "=") {
		ts.Fatalf("usage: kubectl-set-image NS/DEPLOYMENT CONTAINER=IMAGE")
	}
	ns, name, _ := strings.Cut(args[0], "/")
	container, image, _ := strings.Cut(args[1], "=")
	cfg, err := clientcmd.BuildConfigFromFlags("", ts.Getenv("KUBECONFIG"))
	ts.Check(err)
	cs, err := kubernetes.NewForConfig(cfg)
	ts.Check(err)
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":%q,"image":%q}]}}}}`, container, image)
	_, err = cs.AppsV1().Deployments(ns).Patch(context.Background(), name, types.StrategicMergePatchType, []byte(patch),
		metav1.PatchOptions{FieldManager: "kubectl-set"})
	ts.Check(err)
}
