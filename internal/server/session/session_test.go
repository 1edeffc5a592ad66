package session

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"converge.dev/converge/internal/server/rbac"
)

func TestUserOfClaims(t *testing.T) {
	tests := []struct {
		claims map[string]any
		want   rbac.User
	}{
		{map[string]any{"sub": "1", "email": "a@x", "preferred_username": "alice", "groups": []any{"platform", "platform:Owners"},
			"email_verified": true, "iat": 17e8, "aud": "converge", "nonce": "n"},
			rbac.User{Name: "alice", Groups: []string{"platform", "platform:Owners"},
				Claims: map[string][]string{"sub": {"1"}, "email": {"a@x"}, "preferred_username": {"alice"}}}},
		{map[string]any{"sub": "1", "email": "a@x"}, rbac.User{Name: "a@x", Claims: map[string][]string{"sub": {"1"}, "email": {"a@x"}}}},
		{map[string]any{"sub": "1", "groups": "ops"}, rbac.User{Name: "1", Groups: []string{"ops"}, Claims: map[string][]string{"sub": {"1"}}}},
		{map[string]any{"groups": []any{"ops"}}, rbac.User{Groups: []string{"ops"}}}, // no name: Callback refuses it
		// A value too long for the session cookie is not kept.
		{map[string]any{"sub": "1", "picture": strings.Repeat("x", 300)}, rbac.User{Name: "1", Claims: map[string][]string{"sub": {"1"}}}},
	}
	for _, tc := range tests {
		if got := userOf(tc.claims, "groups"); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("userOf(%v) = %+v, want %+v", tc.claims, got, tc.want)
		}
	}
}

// request carries the cookies a response set.
func request(method string, rec *httptest.ResponseRecorder) *http.Request {
	r := httptest.NewRequest(method, "/api/v1/units", nil)
	for _, c := range rec.Result().Cookies() {
		r.AddCookie(c)
	}
	return r
}

func TestSessions(t *testing.T) {
	acc, err := NewAccount("s3cret", "ops")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Options{Accounts: map[string]Account{"admin": acc}, TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Login("admin", "wrong"); err != ErrBadLogin {
		t.Errorf("a wrong password: %v", err)
	}
	if _, err := m.Login("nobody", "s3cret"); err != ErrBadLogin {
		t.Errorf("an unknown user: %v", err)
	}
	u, err := m.Login("admin", "s3cret")
	if err != nil || u.Name != "admin" || len(u.Groups) != 1 {
		t.Fatalf("login: %+v %v", u, err)
	}
	rec := httptest.NewRecorder()
	if err := m.Start(rec, u); err != nil {
		t.Fatal(err)
	}
	if got, ok := m.User(request("GET", rec)); !ok || got.Name != "admin" {
		t.Errorf("the session's user: %+v %v", got, ok)
	}
	post := request("POST", rec)
	if err := m.CheckCSRF(post); err != ErrCSRF {
		t.Errorf("a POST without the token: %v", err)
	}
	post.Header.Set(CSRFHeader, "not-the-token")
	if err := m.CheckCSRF(post); err != ErrCSRF {
		t.Errorf("a POST with another token: %v", err)
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == CSRFCookie {
			post.Header.Set(CSRFHeader, c.Value)
		}
		if c.Name == SessionCookie && (!c.HttpOnly || c.SameSite != http.SameSiteStrictMode) {
			t.Errorf("the session cookie is not HttpOnly and SameSite=Strict: %+v", c)
		}
	}
	if err := m.CheckCSRF(post); err != nil {
		t.Errorf("a POST with the token: %v", err)
	}
	// Another server's keys: not a login here.
	other, _ := New(Options{})
	if _, ok := other.User(request("GET", rec)); ok {
		t.Error("a cookie signed with other keys was taken")
	}
	time.Sleep(2100 * time.Millisecond) // past the one-second TTL
	if _, ok := m.User(request("GET", rec)); ok {
		t.Error("an expired session was taken")
	}
}
