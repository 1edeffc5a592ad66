package plan

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/object"
)

func hookObj(name string, ann map[string]string) object.Decoded {
	o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "batch/v1", "kind": "Job"}}
	o.SetName(name)
	o.SetNamespace("ns")
	o.SetAnnotations(ann)
	return object.Decoded{Object: o, Source: object.Source{File: name + ".yaml"}}
}

func TestHookPhases(t *testing.T) {
	for _, tc := range []struct {
		ann  map[string]string
		want string
		err  string
	}{
		{ann: nil, want: ""},
		{ann: map[string]string{HookAnnotation: "PreSync"}, want: "PreSync"},
		{ann: map[string]string{HookAnnotation: "PreSync, PostSync"}, want: "PreSync,PostSync"},
		{ann: map[string]string{HookAnnotation: "Skip"}, want: "Skip"},
		{ann: map[string]string{HookAnnotation: "presync"}, err: `unknown phase "presync"`},
		{ann: map[string]string{helmHook: "pre-install,pre-upgrade"}, want: "PreSync"},
		{ann: map[string]string{helmHook: "post-install"}, want: "PostSync"},
		{ann: map[string]string{helmHook: "test"}, want: "Skip"},
		// Argo CD's own annotation wins over Helm's.
		{ann: map[string]string{helmHook: "pre-install", HookAnnotation: "Sync"}, want: "Sync"},
	} {
		ph, err := HookPhases(hookObj("x", tc.ann).Object)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: got %v, want error %q", tc.ann, err, tc.err)
			}
			continue
		}
		var got []string
		for _, p := range ph {
			got = append(got, string(p))
		}
		if strings.Join(got, ",") != tc.want || err != nil {
			t.Errorf("%v: got %v %v, want %s", tc.ann, got, err, tc.want)
		}
	}
}

func TestDeletePolicies(t *testing.T) {
	for _, tc := range []struct {
		ann  map[string]string
		want string
	}{
		{nil, "BeforeHookCreation"},
		{map[string]string{HookDeletePolicyAnnotation: "HookSucceeded,HookFailed"}, "HookSucceeded,HookFailed"},
		{map[string]string{helmHookDeletePolicy: "hook-succeeded"}, "HookSucceeded"},
	} {
		var got []string
		for _, p := range DeletePolicies(hookObj("x", tc.ann).Object) {
			got = append(got, string(p))
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("%v: got %v, want %s", tc.ann, got, tc.want)
		}
	}
}

// TestHookOrder: PreSync hooks lead by wave, Sync hooks sit in their
// wave, PostSync and SyncFail follow prunes; Skip is never applied nor
// pruned; a bad wave names the file.
func TestHookOrder(t *testing.T) {
	cm := func(name, wave string) object.Decoded {
		d := hookObj(name, map[string]string{WaveAnnotation: wave})
		d.Object.SetAPIVersion("v1")
		d.Object.SetKind("ConfigMap")
		return d
	}
	in := Input{Unit: "u", Prune: true, Desired: []object.Decoded{
		hookObj("fail", map[string]string{HookAnnotation: "SyncFail"}),
		hookObj("post", map[string]string{HookAnnotation: "PostSync"}),
		cm("w1", "1"),
		hookObj("sync-w1", map[string]string{HookAnnotation: "Sync", WaveAnnotation: "1"}),
		hookObj("pre-2", map[string]string{HookAnnotation: "PreSync", WaveAnnotation: "2"}),
		hookObj("pre-1", map[string]string{HookAnnotation: "PreSync", helmHookWeight: "-1"}),
		hookObj("skipped", map[string]string{HookAnnotation: "Skip"}),
		cm("w0", "0"),
	}}
	skipped := object.RefOf(hookObj("skipped", nil).Object)
	in.Inventory = []object.Ref{skipped}
	in.Live = map[object.Key]*unstructured.Unstructured{skipped.Key(): hookObj("skipped", map[string]string{OwnerAnnotation: "u"}).Object}
	p, err := Make(in)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range p.Steps {
		got = append(got, s.Ref.Name+":"+string(s.Action)+string(s.Hook))
	}
	want := "pre-1:hookPreSync pre-2:hookPreSync w0:create w1:create sync-w1:hookSync post:hookPostSync fail:hookSyncFail"
	if strings.Join(got, " ") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
	if p.Changes() != 2 {
		t.Errorf("Changes() = %d, want 2: hooks are not changes", p.Changes())
	}
	in.Desired = append(in.Desired, hookObj("bad", map[string]string{HookAnnotation: "PreSync", WaveAnnotation: "x"}))
	if _, err := Make(in); err == nil || !strings.Contains(err.Error(), "bad.yaml") {
		t.Errorf("bad wave: %v, want an error naming bad.yaml", err)
	}
}
