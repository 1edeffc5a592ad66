package v1

import "testing"

func TestResourceRefParts(t *testing.T) {
	tests := []struct {
		id, want string
		ok       bool
	}{
		{"apps_web_apps_Deployment", "apps/web apps Deployment", true},
		{"_shop__Namespace", "/shop  Namespace", true}, // cluster-scoped, core group
		{"apps_web_Deployment", "", false},
	}
	for _, tc := range tests {
		ns, name, group, kind, ok := ResourceRef{ID: tc.id}.Parts()
		got := ""
		if ok {
			got = ns + "/" + name + " " + group + " " + kind
		}
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: %q %v, want %q %v", tc.id, got, ok, tc.want, tc.ok)
		}
	}
}
