package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
)

// Pod annotations that make the fake kubelet simulate what a real one
// reports, so that health and rollout gates meet real API objects.
const (
	// annotationState picks the state to simulate. Empty: containers run and
	// are Ready (restartPolicy Always), or exit 0 (Never, OnFailure).
	// CrashLoopBackOff, ImagePullBackOff, ErrImagePull: waiting with that
	// reason, never Ready. NotReady: running but failing readiness.
	// Failed: the pod fails with exit code 1. Running: stays running even
	// when restartPolicy would let it finish.
	annotationState = "sim.converge.dev/state"
	// annotationDelay holds a pod in Pending for a Go duration ("2s")
	// counted from its creation, to make Progressing observable.
	annotationDelay = "sim.converge.dev/delay"
)

type kubelet struct {
	cs     kubernetes.Interface
	pods   corelisters.PodLister
	queue  workqueue.TypedRateLimitingInterface[string]
	nodes  []string
	nextIP atomic.Uint32
}

// runKubelet registers n Ready nodes and keeps pods moving: it binds
// unscheduled pods (there is no scheduler), reports them Running or
// finished, and completes deletions (there is no container to stop).
func runKubelet(ctx context.Context, kubeconfig string, n int) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	k := &kubelet{cs: cs, queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("node-%d", i)
		if err := k.registerNode(ctx, name); err != nil {
			return fmt.Errorf("register node %s: %w", name, err)
		}
		k.nodes = append(k.nodes, name)
	}

	factory := informers.NewSharedInformerFactory(cs, 0)
	inf := factory.Core().V1().Pods()
	k.pods = inf.Lister()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			k.queue.Add(key)
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	defer k.queue.ShutDown()
	for w := 0; w < 4; w++ {
		go k.work(ctx)
	}
	<-ctx.Done()
	return nil
}

func (k *kubelet) registerNode(ctx context.Context, name string) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("64"),
		corev1.ResourceMemory:           resource.MustParse("256Gi"),
		corev1.ResourcePods:             resource.MustParse("1000"),
		corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:   name,
		Labels: map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
	}}
	created, err := k.cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = k.cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return err
	}
	now := metav1.Now()
	created.Status = corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "fake kubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: name}},
		NodeInfo:  corev1.NodeSystemInfo{KubeletVersion: "v1.37.2", OperatingSystem: "linux", Architecture: "amd64", ContainerRuntimeVersion: "fake://1.0"},
	}
	_, err = k.cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	return err
}

func (k *kubelet) work(ctx context.Context) {
	for {
		key, quit := k.queue.Get()
		if quit {
			return
		}
		retry, err := k.sync(ctx, key)
		switch {
		case err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err):
			k.queue.AddRateLimited(key)
		case apierrors.IsConflict(err):
			k.queue.Add(key)
		case retry > 0:
			k.queue.Forget(key)
			k.queue.AddAfter(key, retry)
		default:
			k.queue.Forget(key)
		}
		k.queue.Done(key)
	}
}

// sync moves one pod a step; a positive duration asks to be called again.
func (k *kubelet) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	pod, err := k.pods.Pods(ns).Get(name)
	if err != nil {
		return 0, nil // gone
	}
	pods := k.cs.CoreV1().Pods(ns)
	switch {
	case pod.DeletionTimestamp != nil:
		uid := pod.UID
		return 0, pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &uid}})
	case pod.Spec.NodeName == "":
		return 0, pods.Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: k.pickNode(pod)},
		}, metav1.CreateOptions{})
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		return 0, nil
	}
	if d, err := time.ParseDuration(pod.Annotations[annotationDelay]); err == nil {
		if wait := time.Until(pod.CreationTimestamp.Add(d)); wait > 0 {
			return wait, nil
		}
	}
	want := k.simulate(pod)
	if signature(pod.Status) == signature(want) {
		return 0, nil
	}
	updated := pod.DeepCopy()
	updated.Status = want
	_, err = pods.UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	return 0, err
}

// pickNode honours the node-name affinity the DaemonSet controller sets and
// otherwise spreads pods by a hash of their name.
func (k *kubelet) pickNode(pod *corev1.Pod) string {
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			for _, f := range term.MatchFields {
				if f.Key == "metadata.name" && len(f.Values) > 0 {
					return f.Values[0]
				}
			}
		}
	}
	h := fnv.New32a()
	h.Write([]byte(pod.Namespace + "/" + pod.Name))
	return k.nodes[int(h.Sum32())%len(k.nodes)]
}

// signature is what sync compares, so that a pod already in the wanted
// state is not written again.
func signature(s corev1.PodStatus) string {
	sig := string(s.Phase)
	for _, c := range s.Conditions {
		if c.Type == corev1.PodReady {
			sig += "/ready=" + string(c.Status)
		}
	}
	for _, c := range s.ContainerStatuses {
		switch {
		case c.State.Waiting != nil:
			sig += "/" + c.Name + "=waiting:" + c.State.Waiting.Reason
		case c.State.Running != nil:
			sig += fmt.Sprintf("/%s=running:%t", c.Name, c.Ready)
		case c.State.Terminated != nil:
			sig += fmt.Sprintf("/%s=terminated:%d", c.Name, c.State.Terminated.ExitCode)
		}
	}
	return sig
}
