package session

import (
	"errors"
	"sync"
	"time"
)

// ErrTooManyLogins refuses a login try without checking it: the name had
// too many failures lately, or too many checks run at once.
var ErrTooManyLogins = errors.New("too many login attempts: try again later")

// Argo CD's defaults (ARGOCD_SESSION_MAX_FAIL_COUNT,
// ARGOCD_SESSION_FAILURE_WINDOW_SECONDS, ARGOCD_SESSION_MAX_CACHE_SIZE,
// ARGOCD_MAX_CONCURRENT_LOGIN_REQUESTS_COUNT).
const (
	defaultMaxFailures   = 5
	defaultFailureWindow = 5 * time.Minute
	maxTracked           = 1000
	defaultConcurrent    = 50
)

// limiter counts failed logins per name: past max within window of the
// last failure, the name is refused without a password check until the
// window passes. It also bounds password checks running at once (each
// is a bcrypt: a flood of them is a denial of service).
type limiter struct {
	max    int
	window time.Duration
	now    func() time.Time
	slots  chan struct{}

	mu       sync.Mutex
	failures map[string]failure
}

type failure struct {
	count int
	last  time.Time
}

func newLimiter(max int, window time.Duration, concurrent int) *limiter {
	if max == 0 {
		max = defaultMaxFailures
	}
	if window == 0 {
		window = defaultFailureWindow
	}
	if concurrent == 0 {
		concurrent = defaultConcurrent
	}
	return &limiter{max: max, window: window, now: time.Now, slots: make(chan struct{}, concurrent), failures: map[string]failure{}}
}

// try runs check for name unless name is locked out or every slot is
// taken; a failed check counts against name, a good one clears it.
func (l *limiter) try(name string, check func() error) error {
	l.mu.Lock()
	f, ok := l.failures[name]
	if ok && l.now().Sub(f.last) > l.window {
		delete(l.failures, name)
		f = failure{}
	}
	locked := f.count >= l.max
	l.mu.Unlock()
	if locked {
		return ErrTooManyLogins
	}
	select {
	case l.slots <- struct{}{}:
		defer func() { <-l.slots }()
	default:
		return ErrTooManyLogins
	}
	err := check()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		delete(l.failures, name)
		return nil
	}
	if !errors.Is(err, ErrBadLogin) {
		return err
	}
	if _, ok := l.failures[name]; !ok && len(l.failures) >= maxTracked {
		l.evict()
	}
	f = l.failures[name]
	f.count++
	f.last = l.now()
	l.failures[name] = f
	return err
}

// evict makes room: expired entries go, else the one failed longest ago.
func (l *limiter) evict() {
	oldest, at := "", l.now()
	for name, f := range l.failures {
		if l.now().Sub(f.last) > l.window {
			delete(l.failures, name)
			continue
		}
		if f.last.Before(at) {
			oldest, at = name, f.last
		}
	}
	if len(l.failures) >= maxTracked {
		delete(l.failures, oldest)
	}
}
