package argocd

import (
	"strings"
	"testing"
	"time"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
)

func TestCheckWindows(t *testing.T) {
	// Tuesday 2026-12-01, 22:30 UTC.
	now := time.Date(2026, 12, 1, 22, 30, 0, 0, time.UTC)
	app := WindowTarget{Name: "orders-api-prod", Namespace: "orders-prod", Clusters: []string{InClusterServer, "in-cluster"}}
	nightlyAllow := v1alpha1.SyncWindow{Kind: "allow", Schedule: "0 22 * * *", Duration: "1h", Applications: []string{"*"}}
	morningAllow := v1alpha1.SyncWindow{Kind: "allow", Schedule: "0 6 * * *", Duration: "1h", Applications: []string{"*-prod"}}
	freeze := v1alpha1.SyncWindow{Kind: "deny", Schedule: "0 20 * * *", Duration: "4h", Namespaces: []string{"orders-*"}}
	tests := []struct {
		name        string
		windows     []v1alpha1.SyncWindow
		manual      bool
		wantAllowed bool
		wantMsg     string
	}{
		{"no windows", nil, false, true, ""},
		{"a window for other applications", []v1alpha1.SyncWindow{{Kind: "deny", Schedule: "* * * * *", Duration: "1h", Applications: []string{"billing-*"}}}, false, true, ""},
		{"inside an allow window", []v1alpha1.SyncWindow{nightlyAllow}, false, true, ""},
		{"outside every allow window", []v1alpha1.SyncWindow{morningAllow}, false, false, "sync allowed only in allow window 0"},
		{"outside, manual allowed", []v1alpha1.SyncWindow{{Kind: "allow", Schedule: "0 6 * * *", Duration: "1h", Applications: []string{"*"}, ManualSync: true}}, true, true, ""},
		{"deny wins over allow", []v1alpha1.SyncWindow{nightlyAllow, freeze}, false, false, "sync denied by the active deny window 1"},
		{"deny without manualSync denies manual", []v1alpha1.SyncWindow{freeze}, true, false, "deny window 0"},
		{"deny with manualSync lets manual through", []v1alpha1.SyncWindow{{Kind: "deny", Schedule: "0 20 * * *", Duration: "4h", Namespaces: []string{"orders-*"}, ManualSync: true}}, true, true, ""},
		{"deny with manualSync still stops automated", []v1alpha1.SyncWindow{{Kind: "deny", Schedule: "0 20 * * *", Duration: "4h", Namespaces: []string{"orders-*"}, ManualSync: true}}, false, false, "deny window 0"},
		{"and operator needs every selector", []v1alpha1.SyncWindow{{Kind: "deny", Schedule: "0 20 * * *", Duration: "4h", Namespaces: []string{"orders-*"}, Applications: []string{"billing"}, AndOperator: true}}, false, true, ""},
		{"or by default", []v1alpha1.SyncWindow{{Kind: "deny", Schedule: "0 20 * * *", Duration: "4h", Namespaces: []string{"orders-*"}, Applications: []string{"billing"}}}, false, false, "deny window 0"},
		{"cluster selector", []v1alpha1.SyncWindow{{Kind: "deny", Schedule: "0 20 * * *", Duration: "4h", Clusters: []string{"in-cluster"}}}, false, false, "deny window 0"},
		{"time zone: 22:30 UTC is 23:30 in Amsterdam, past a 22:00 window there", []v1alpha1.SyncWindow{{Kind: "allow", Schedule: "0 22 * * *", Duration: "1h", Applications: []string{"*"}, TimeZone: "Europe/Amsterdam"}}, false, false, "none active"},
		{"a window that opened before midnight and lasts", []v1alpha1.SyncWindow{{Kind: "deny", Schedule: "0 23 * * 1", Duration: "48h", Applications: []string{"*"}}}, false, false, "deny window 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := CheckWindows(tt.windows, app, tt.manual, now)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != tt.wantAllowed || !strings.Contains(d.Message, tt.wantMsg) {
				t.Errorf("got allowed=%t %q, want %t %q", d.Allowed, d.Message, tt.wantAllowed, tt.wantMsg)
			}
		})
	}

	d, _ := CheckWindows([]v1alpha1.SyncWindow{freeze}, app, false, now)
	if want := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC); !d.Next.Equal(want) {
		t.Errorf("the freeze ends at %s, want %s", d.Next, want)
	}
	for _, bad := range []v1alpha1.SyncWindow{
		{Kind: "maybe", Schedule: "* * * * *", Duration: "1h"},
		{Kind: "deny", Schedule: "every day", Duration: "1h"},
		{Kind: "deny", Schedule: "* * * * *", Duration: "soon"},
		{Kind: "deny", Schedule: "* * * * *", Duration: "1h", TimeZone: "Mars/Olympus"},
	} {
		if _, err := CheckWindows([]v1alpha1.SyncWindow{bad}, app, false, now); err == nil || !strings.Contains(err.Error(), "spec.syncWindows[0].") {
			t.Errorf("%+v: got %v, want an error naming the field", bad, err)
		}
	}
}
