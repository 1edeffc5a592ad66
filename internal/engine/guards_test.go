package engine

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
)

func TestParseBudget(t *testing.T) {
	tests := []struct {
		in      string
		want    plan.Budget
		wantErr bool
	}{
		{"0", plan.Budget{Off: true}, false},
		{"10%", plan.Budget{MaxPercent: 10}, false},
		{"200", plan.Budget{MaxObjects: 200}, false},
		{"10%, 200", plan.Budget{MaxPercent: 10, MaxObjects: 200}, false},
		{"150%", plan.Budget{}, true},
		{"-3", plan.Budget{}, true},
		{"lots", plan.Budget{}, true},
	}
	for _, tt := range tests {
		got, err := ParseBudget(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseBudget(%q) = %+v, %v; want %+v, error %t", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestGuardsFromAnnotations(t *testing.T) {
	var o SyncOptions
	err := Guards(&o, map[string]string{PruneBudgetAnnotation: "5", plan.PruneApprovedAnnotation: "2026-12-01T10:00:00Z",
		AdoptUnitAnnotation: "true"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Budget.MaxObjects != 5 || !o.Budget.Approved.Equal(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)) || !o.Adopt || o.PruneAdopted {
		t.Errorf("got %+v", o)
	}
	err = Guards(&o, map[string]string{plan.PruneApprovedAnnotation: "yesterday"})
	if err == nil || !strings.Contains(err.Error(), plan.PruneApprovedAnnotation) {
		t.Errorf("a bad approval time: %v, want an error naming the annotation", err)
	}
}

func TestRenderSizeLimits(t *testing.T) {
	objs := make([]object.Decoded, 0, 20)
	for i := 0; i < 20; i++ {
		o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": fmt.Sprint("c", i)}, "data": map[string]any{"v": strings.Repeat("x", 1000)}}}
		objs = append(objs, object.Decoded{Object: o, Source: object.Source{File: "all.yaml", Document: i + 1}})
	}
	if err := New(Options{}).checkSize(objs); err != nil {
		t.Errorf("default limits: %v", err)
	}
	if err := New(Options{MaxObjects: 19}).checkSize(objs); !errors.Is(err, ErrRenderTooLarge) || !strings.Contains(err.Error(), "20 objects, limit 19") {
		t.Errorf("object limit: %v", err)
	}
	if err := New(Options{MaxBytes: 5000}).checkSize(objs); !errors.Is(err, ErrRenderTooLarge) || !strings.Contains(err.Error(), "all.yaml: document 5") {
		t.Errorf("byte limit: %v", err)
	}
}
