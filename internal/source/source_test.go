package source

import "testing"

func TestParseRevision(t *testing.T) {
	tests := []struct {
		in   string
		want Ref
	}{
		{"", Ref{}},
		{"HEAD", Ref{}},
		{"main", Ref{Name: "main"}},
		{"v1.2.0", Ref{Name: "v1.2.0"}},
		{"semver:1.15.x", Ref{SemVer: "1.15.x"}},
		{"tag:v1", Ref{Tag: "v1"}},
		{"branch:feature/x", Ref{Branch: "feature/x"}},
		{"3f2a9c1", Ref{Commit: "3f2a9c1"}},
		{"3f2a9c1e0b8d7a6f5e4d3c2b1a0f9e8d7c6b5a49", Ref{Commit: "3f2a9c1e0b8d7a6f5e4d3c2b1a0f9e8d7c6b5a49"}},
		{"cafe", Ref{Name: "cafe"}}, // too short to be a commit
	}
	for _, tt := range tests {
		if got := ParseRevision(tt.in); got != tt.want {
			t.Errorf("ParseRevision(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	if err := (Ref{Branch: "a", Tag: "b"}).Validate(); err == nil {
		t.Error("a ref with a branch and a tag validated")
	}
}
