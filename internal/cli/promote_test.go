package cli

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
)

// TestStageReportsRolledBack: `converge promote status` says a stage was
// rolled back in its cluster, what runs against what Git pins, and the
// promotion that makes Git match; a stage without one says nothing.
func TestStageReportsRolledBack(t *testing.T) {
	p := &convergev1.Pipeline{Spec: convergev1.PipelineSpec{Stages: []convergev1.PipelineStage{{Name: "dev"}, {Name: "staging", From: "dev"}}},
		Status: convergev1.PipelineStatus{Stages: []convergev1.StageStatus{{Name: "dev", Healthy: true},
			{Name: "staging", Message: "rolled back in cluster: Rollout s/orders-api: RolloutAborted",
				RolledBack: &convergev1.StageRollback{Since: metav1.Now(), Message: "rolled back in cluster: Rollout s/orders-api: RolloutAborted",
					Running: []string{"r/o:1.0.0@sha256:a"}, Pinned: []string{"r/o:1.1.0@sha256:b"}, Promotion: "orders-api-staging-1a2b-rollback-x"}}}}}
	got := stageReports(p, nil, time.Now())
	if got[0].RolledBack != "" {
		t.Errorf("dev: %q", got[0].RolledBack)
	}
	if want := "runs r/o:1.0.0@sha256:a, Git pins r/o:1.1.0@sha256:b; orders-api-staging-1a2b-rollback-x makes Git match"; got[1].RolledBack != want {
		t.Errorf("staging: %q, want %q", got[1].RolledBack, want)
	}
	if !strings.Contains(got[1].Message, "rolled back in cluster") {
		t.Errorf("staging's message: %q", got[1].Message)
	}
}
