package session

import (
	"errors"
	"testing"
	"time"
)

func TestLoginLimit(t *testing.T) {
	acc, err := NewAccount("right")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Options{Accounts: map[string]Account{"admin": acc}, MaxFailures: 3, FailureWindow: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1e9, 0)
	m.limit.now = func() time.Time { return now }
	login := func(name, pw string) error { _, err := m.Login(name, pw); return err }

	// A good login clears the count before the limit.
	for range 2 {
		if err := login("admin", "wrong"); !errors.Is(err, ErrBadLogin) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	if err := login("admin", "right"); err != nil {
		t.Fatalf("right password after 2 failures: %v", err)
	}
	for range 3 {
		login("admin", "wrong")
	}
	// Locked: even the right password is refused, unchecked.
	if err := login("admin", "right"); !errors.Is(err, ErrTooManyLogins) {
		t.Fatalf("right password after 3 failures: %v, want refused", err)
	}
	// Another name is not locked by these; an unknown name locks as well.
	for range 3 {
		if err := login("nobody", "x"); !errors.Is(err, ErrBadLogin) {
			t.Fatalf("unknown name: %v", err)
		}
	}
	if err := login("nobody", "x"); !errors.Is(err, ErrTooManyLogins) {
		t.Errorf("an unknown name past the limit: %v", err)
	}
	// The window passes from the last failure.
	now = now.Add(61 * time.Second)
	if err := login("admin", "right"); err != nil {
		t.Errorf("after the window: %v", err)
	}
}

func TestLoginConcurrency(t *testing.T) {
	l := newLimiter(5, time.Minute, 1)
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		done <- l.try("a", func() error { close(started); <-release; return nil })
	}()
	<-started
	if err := l.try("b", func() error { return nil }); !errors.Is(err, ErrTooManyLogins) {
		t.Errorf("a second check while the only slot is taken: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := l.try("b", func() error { return nil }); err != nil {
		t.Errorf("after the slot is free: %v", err)
	}
}

func TestLimiterBounded(t *testing.T) {
	l := newLimiter(5, time.Minute, 1)
	for i := range maxTracked + 10 {
		l.try(string(rune('a'+i%26))+time.Duration(i).String(), func() error { return ErrBadLogin })
	}
	if n := len(l.failures); n > maxTracked {
		t.Errorf("%d names tracked, bound %d", n, maxTracked)
	}
}
