// Package session keeps who is logged in to converge's UI and API: a
// signed, encrypted cookie per login with an expiry, a CSRF token that
// every state-changing request must echo, local accounts (the admin
// `converge up` creates) and OpenID Connect logins.
package session

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/securecookie"
	"golang.org/x/crypto/bcrypt"

	"converge.dev/converge/internal/server/rbac"
)

// Cookie names. The CSRF cookie is readable by the page's script, which
// sends it back in the CSRFHeader: a page of another site can neither
// read it nor set the header.
const (
	SessionCookie = "converge_session"
	CSRFCookie    = "converge_csrf"
	CSRFHeader    = "X-CSRF-Token"
)

// Options configure a Manager.
type Options struct {
	// HashKey (32 or 64 bytes) signs and BlockKey (32 bytes) encrypts
	// the session cookie. Nil makes random keys: logins end with the
	// process.
	HashKey, BlockKey []byte
	// TTL is how long a login lasts; 0 is 24 hours, as Argo CD's
	// users.session.duration.
	TTL time.Duration
	// Secure marks the cookies HTTPS-only. Off for plain HTTP on
	// loopback.
	Secure bool
	// Accounts are local users, by name.
	Accounts map[string]Account
	// MaxFailures is how many failed logins a name may have within
	// FailureWindow of the last before it is refused unchecked until the
	// window passes; 0 is 5 in 5 minutes, as Argo CD's defaults.
	MaxFailures   int
	FailureWindow time.Duration
	// MaxConcurrentLogins bounds password checks running at once; 0 is 50.
	MaxConcurrentLogins int
}

// Account is a local user: a bcrypt hash of their password, and the
// groups their logins carry (for RBAC).
type Account struct {
	Hash   []byte
	Groups []string
}

// NewAccount hashes password.
func NewAccount(password string, groups ...string) (Account, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return Account{Hash: h, Groups: groups}, err
}

// RandomPassword is a password for a generated account.
func RandomPassword() string {
	b := make([]byte, 15)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return fmt.Sprintf("%x", b)
}

// Manager starts, reads and ends logins.
type Manager struct {
	o     Options
	sc    *securecookie.SecureCookie
	limit *limiter
}

type payload struct {
	User    rbac.User
	Expires int64
	// CSRF is the token this login's requests must send.
	CSRF string
}

// New returns a Manager.
func New(o Options) (*Manager, error) {
	if o.TTL == 0 {
		o.TTL = 24 * time.Hour
	}
	if o.HashKey == nil {
		o.HashKey = securecookie.GenerateRandomKey(64)
	}
	if o.BlockKey == nil {
		o.BlockKey = securecookie.GenerateRandomKey(32)
	}
	if len(o.BlockKey) != 32 || (len(o.HashKey) != 32 && len(o.HashKey) != 64) {
		return nil, errors.New("session keys: hash key of 32 or 64 bytes and block key of 32 bytes")
	}
	sc := securecookie.New(o.HashKey, o.BlockKey).MaxAge(int(o.TTL / time.Second))
	return &Manager{o: o, sc: sc, limit: newLimiter(o.MaxFailures, o.FailureWindow, o.MaxConcurrentLogins)}, nil
}

// ErrBadLogin is a wrong name or password; it does not say which.
var ErrBadLogin = errors.New("invalid username or password")

// Login checks a local account's password. A name with too many recent
// failures, known or not, gets ErrTooManyLogins without a check.
func (m *Manager) Login(name, password string) (rbac.User, error) {
	var u rbac.User
	err := m.limit.try(name, func() error {
		acc, ok := m.o.Accounts[name]
		if !ok {
			// Spend the same time as a real check: no telling names apart.
			bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
			return ErrBadLogin
		}
		if bcrypt.CompareHashAndPassword(acc.Hash, []byte(password)) != nil {
			return ErrBadLogin
		}
		u = rbac.User{Name: name, Groups: acc.Groups}
		return nil
	})
	return u, err
}

var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("not a password"), bcrypt.DefaultCost)

// Start logs u in on w: a session cookie and its CSRF token.
func (m *Manager) Start(w http.ResponseWriter, u rbac.User) error {
	token := securecookie.GenerateRandomKey(32)
	p := payload{User: u, Expires: time.Now().Add(m.o.TTL).Unix(), CSRF: fmt.Sprintf("%x", token)}
	v, err := m.sc.Encode(SessionCookie, p)
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: v, Path: "/", HttpOnly: true, Secure: m.o.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int(m.o.TTL / time.Second)})
	http.SetCookie(w, &http.Cookie{Name: CSRFCookie, Value: p.CSRF, Path: "/", Secure: m.o.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int(m.o.TTL / time.Second)})
	return nil
}

// End logs out: both cookies go.
func (m *Manager) End(w http.ResponseWriter) {
	for _, name := range []string{SessionCookie, CSRFCookie} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, Secure: m.o.Secure, SameSite: http.SameSiteStrictMode})
	}
}

// User is r's logged-in user. A missing, forged or expired cookie is no
// user.
func (m *Manager) User(r *http.Request) (rbac.User, bool) {
	p, ok := m.read(r)
	return p.User, ok
}

func (m *Manager) read(r *http.Request) (payload, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return payload{}, false
	}
	var p payload
	if err := m.sc.Decode(SessionCookie, c.Value, &p); err != nil || time.Now().Unix() > p.Expires {
		return payload{}, false
	}
	return p, true
}

// ErrCSRF is a state-changing request without its login's token.
var ErrCSRF = errors.New("missing or wrong CSRF token")

// CheckCSRF passes a safe method (GET, HEAD) or a request whose
// CSRFHeader equals its login's token.
func (m *Manager) CheckCSRF(r *http.Request) error {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return nil
	}
	p, ok := m.read(r)
	got := r.Header.Get(CSRFHeader)
	if !ok || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(p.CSRF)) != 1 {
		return ErrCSRF
	}
	return nil
}
