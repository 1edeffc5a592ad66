package argocd

import (
	"errors"
	"testing"
	"time"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/engine"
)

func TestRetryPolicy(t *testing.T) {
	three := int64(3)
	for _, tc := range []struct {
		name    string
		retry   *v1alpha1.RetryStrategy
		ok      bool
		backoff []time.Duration // for retries 0, 1, 2, 3
		allows  []bool
	}{
		{name: "none", retry: nil},
		{name: "defaults", retry: &v1alpha1.RetryStrategy{Limit: 2}, ok: true,
			backoff: []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second},
			allows:  []bool{true, true, false, false}},
		{name: "custom, capped", ok: true, retry: &v1alpha1.RetryStrategy{Limit: -1,
			Backoff: &v1alpha1.Backoff{Duration: "1s", Factor: &three, MaxDuration: "10s"}},
			backoff: []time.Duration{time.Second, 3 * time.Second, 9 * time.Second, 10 * time.Second},
			allows:  []bool{true, true, true, true}},
		{name: "limit 0 never retries", ok: true, retry: &v1alpha1.RetryStrategy{},
			backoff: []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second},
			allows:  []bool{false, false, false, false}},
	} {
		app := &v1alpha1.Application{Spec: v1alpha1.ApplicationSpec{SyncPolicy: &v1alpha1.SyncPolicy{Retry: tc.retry}}}
		r, ok := RetryPolicy(app)
		if ok != tc.ok {
			t.Errorf("%s: ok=%v", tc.name, ok)
			continue
		}
		for n := range tc.backoff {
			if got := r.Backoff(int64(n)); got != tc.backoff[n] {
				t.Errorf("%s: backoff(%d) = %s, want %s", tc.name, n, got, tc.backoff[n])
			}
			if got := r.Allows(int64(n)); got != tc.allows[n] {
				t.Errorf("%s: allows(%d) = %v", tc.name, n, got)
			}
		}
	}
}

// TestRetryCount: failures of one revision count up; a success or a new
// revision starts over.
func TestRetryCount(t *testing.T) {
	app := &v1alpha1.Application{}
	now := time.Now()
	fail := errors.New("boom")
	var got []int64
	for _, step := range []struct {
		rev string
		err error
	}{{"a", fail}, {"a", fail}, {"a", fail}, {"b", fail}, {"b", nil}, {"b", fail}} {
		RecordSync(app, v1alpha1.Operation{}, engine.Report{Revision: step.rev}, now, step.err, now)
		got = append(got, app.Status.OperationState.RetryCount)
	}
	want := []int64{0, 1, 2, 0, 0, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("retry counts %v, want %v", got, want)
		}
	}
}
