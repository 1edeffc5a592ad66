package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gorilla/securecookie"
	"golang.org/x/oauth2"

	"converge.dev/converge/internal/server/rbac"
)

// OIDCConfig is an OpenID Connect provider to log in with (Gitea, Dex,
// Keycloak, Okta...), as Argo CD's oidc.config has it.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL, exactly as its discovery
	// document says it.
	Issuer string
	// ClientID and ClientSecret are the client registered there.
	ClientID, ClientSecret string
	// RedirectURL is this server's /auth/callback as the browser reaches
	// it, registered with the provider.
	RedirectURL string
	// Scopes beyond openid; nil is profile, email and groups.
	Scopes []string
	// GroupsClaim names the claim holding the groups RBAC sees; "" is
	// "groups".
	GroupsClaim string
	// Client reaches the provider (a private CA, say); nil is the default.
	Client *http.Client
}

// OIDC logs users in through a provider: /auth/login sends the browser
// there, /auth/callback checks what comes back and starts the session.
type OIDC struct {
	m        *Manager
	conf     oauth2.Config
	verifier *oidc.IDTokenVerifier
	groups   string
	client   *http.Client
	states   *securecookie.SecureCookie
}

const stateCookie = "converge_oidc"

// NewOIDC reads the provider's discovery document.
func (m *Manager) NewOIDC(ctx context.Context, c OIDCConfig) (*OIDC, error) {
	if c.Client != nil {
		ctx = oidc.ClientContext(ctx, c.Client)
	}
	p, err := oidc.NewProvider(ctx, c.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc: issuer %s: %w", c.Issuer, err)
	}
	scopes := c.Scopes
	if scopes == nil {
		scopes = []string{"profile", "email", "groups"}
	}
	groups := c.GroupsClaim
	if groups == "" {
		groups = "groups"
	}
	return &OIDC{m: m, groups: groups, client: c.Client,
		conf: oauth2.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret, RedirectURL: c.RedirectURL, Endpoint: p.Endpoint(),
			Scopes: append([]string{oidc.ScopeOpenID}, scopes...)},
		verifier: p.Verifier(&oidc.Config{ClientID: c.ClientID}),
		states:   securecookie.New(securecookie.GenerateRandomKey(32), securecookie.GenerateRandomKey(32)).MaxAge(600),
	}, nil
}

type loginState struct{ State, Nonce, Verifier string }

// Login sends the browser to the provider, with a state, a nonce and a
// PKCE verifier kept in a short-lived cookie.
func (o *OIDC) Login(w http.ResponseWriter, r *http.Request) {
	st := loginState{State: randomString(), Nonce: randomString(), Verifier: oauth2.GenerateVerifier()}
	v, err := o.states.Encode(stateCookie, st)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// Lax, not Strict: the provider's redirect back is a cross-site
	// navigation that must carry it.
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: v, Path: "/auth/", HttpOnly: true, Secure: o.m.o.Secure,
		SameSite: http.SameSiteLaxMode, MaxAge: 600})
	http.Redirect(w, r, o.conf.AuthCodeURL(st.State, oidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier)), http.StatusFound)
}

// ErrOIDC is a login the provider's answer does not prove.
var ErrOIDC = errors.New("the single sign-on login could not be verified")

// Callback checks the provider's answer and starts the session; then it
// sends the browser to the UI.
func (o *OIDC) Callback(w http.ResponseWriter, r *http.Request) {
	u, err := o.callback(r)
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: "", Path: "/auth/", MaxAge: -1})
	if err != nil {
		// The detail stays out of the page: it may hold the provider's
		// own error text.
		http.Error(w, ErrOIDC.Error(), http.StatusUnauthorized)
		return
	}
	if err := o.m.Start(w, u); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, "/", http.StatusFound)
}

func (o *OIDC) callback(r *http.Request) (rbac.User, error) {
	c, err := r.Cookie(stateCookie)
	if err != nil {
		return rbac.User{}, err
	}
	var st loginState
	if err := o.states.Decode(stateCookie, c.Value, &st); err != nil {
		return rbac.User{}, err
	}
	if r.URL.Query().Get("state") != st.State || r.URL.Query().Get("error") != "" {
		return rbac.User{}, ErrOIDC
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if o.client != nil {
		ctx = oidc.ClientContext(ctx, o.client)
	}
	tok, err := o.conf.Exchange(ctx, r.URL.Query().Get("code"), oauth2.VerifierOption(st.Verifier))
	if err != nil {
		return rbac.User{}, err
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		return rbac.User{}, ErrOIDC
	}
	id, err := o.verifier.Verify(ctx, raw)
	if err != nil || id.Nonce != st.Nonce {
		return rbac.User{}, ErrOIDC
	}
	var claims map[string]any
	if err := id.Claims(&claims); err != nil {
		return rbac.User{}, err
	}
	u := userOf(claims, o.groups)
	if u.Name == "" {
		// No name to hold RBAC and Events to.
		return rbac.User{}, ErrOIDC
	}
	return u, nil
}

// tokenClaims say what the token is, not who holds it: no policy scope
// names them.
var tokenClaims = map[string]bool{"iss": true, "aud": true, "exp": true, "iat": true, "nbf": true, "nonce": true, "at_hash": true,
	"c_hash": true, "auth_time": true, "azp": true, "jti": true, "sid": true}

// maxClaim bounds a kept claim value: the session is a cookie.
const maxClaim = 256

// userOf names the user by preferred_username, else email, else sub,
// with the groups claim's strings as groups, and the other string
// claims kept for policy scopes (argocd-rbac-cm's scopes, [groups,
// email] say).
func userOf(claims map[string]any, groupsClaim string) rbac.User {
	var u rbac.User
	for _, k := range []string{"preferred_username", "email", "sub"} {
		if s, ok := claims[k].(string); ok && s != "" {
			u.Name = s
			break
		}
	}
	for k, v := range claims {
		var vals []string
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				if s, ok := e.(string); ok && len(s) <= maxClaim {
					vals = append(vals, s)
				}
			}
		case string:
			if len(v) <= maxClaim {
				vals = []string{v}
			}
		}
		switch {
		case k == groupsClaim:
			u.Groups = vals
		case len(vals) > 0 && !tokenClaims[k]:
			if u.Claims == nil {
				u.Claims = map[string][]string{}
			}
			u.Claims[k] = vals
		}
	}
	return u
}

func randomString() string {
	return fmt.Sprintf("%x", securecookie.GenerateRandomKey(24))
}
