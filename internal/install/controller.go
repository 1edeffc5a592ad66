package install

import (
	"fmt"

	"converge.dev/converge/internal/object"
)

// Namespace is where the controller runs.
const Namespace = "converge-system"

// controllerManifests is the namespace, RBAC and Deployment. A GitOps
// controller applies whatever Git holds, so its role covers every kind;
// AppProjects are what restrict an Application.
const controllerManifests = `
apiVersion: v1
kind: Namespace
metadata: {name: converge-system}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: converge-controller, namespace: converge-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: converge-controller}
rules:
- apiGroups: ["*"]
  resources: ["*"]
  verbs: ["*"]
- nonResourceURLs: ["*"]
  verbs: ["*"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: converge-controller}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: converge-controller}
subjects:
- {kind: ServiceAccount, name: converge-controller, namespace: converge-system}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: converge-controller
  namespace: converge-system
  labels: {app.kubernetes.io/name: converge-controller}
spec:
  replicas: 1
  selector: {matchLabels: {app.kubernetes.io/name: converge-controller}}
  template:
    metadata: {labels: {app.kubernetes.io/name: converge-controller}}
    spec:
      serviceAccountName: converge-controller
      containers:
      - name: controller
        image: %q
        args: [controller, --leader-elect, --leader-election-namespace=converge-system, --metrics-addr=:8080, --webhook-addr=:8081]
        ports: [{name: metrics, containerPort: 8080}, {name: webhook, containerPort: 8081}]
        resources:
          requests: {cpu: 100m, memory: 256Mi}
        securityContext:
          runAsNonRoot: true
          readOnlyRootFilesystem: true
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}
        env:
        - {name: XDG_CACHE_HOME, value: /cache}
        # Webhook secrets, per forge, from a Secret the platform team
        # creates; a forge without one is refused.
        - {name: CONVERGE_WEBHOOK_GITHUB_SECRET, valueFrom: {secretKeyRef: {name: converge-webhook, key: github, optional: true}}}
        - {name: CONVERGE_WEBHOOK_GITLAB_SECRET, valueFrom: {secretKeyRef: {name: converge-webhook, key: gitlab, optional: true}}}
        - {name: CONVERGE_WEBHOOK_GITEA_SECRET, valueFrom: {secretKeyRef: {name: converge-webhook, key: gitea, optional: true}}}
        volumeMounts: [{name: cache, mountPath: /cache}]
      volumes: [{name: cache, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata:
  name: converge-webhook
  namespace: converge-system
  labels: {app.kubernetes.io/name: converge-controller}
spec:
  selector: {app.kubernetes.io/name: converge-controller}
  ports: [{name: webhook, port: 80, targetPort: webhook}]
`

// Manifests is everything install applies, CRDs first.
func Manifests(image string) ([]object.Decoded, error) {
	objs, err := CRDs()
	if err != nil {
		return nil, err
	}
	more, err := object.Decode([]byte(fmt.Sprintf(controllerManifests, image)), "install/controller.yaml")
	if err != nil {
		return nil, err
	}
	return append(objs, more...), nil
}
