package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/agentguard/go-sdk/credentials"
)

// ClientCredentials issues credentials with the client credentials grant:
// one token request per lease, with the requirement's scopes, its audience
// as an "audience" parameter and its resources as RFC 8707 "resource"
// parameters. It is a credentials.Provider, safe for concurrent use.
//
// It asks for a new token for every lease rather than keep an
// oauth2.TokenSource: the broker caches leases per task and requirement,
// and a token shared between tasks could not be revoked when one ends.
type ClientCredentials struct {
	cfg Config
	now func() time.Time
	revoker
}

var _ credentials.Provider = (*ClientCredentials)(nil)

// NewClientCredentials returns a client credentials provider for cfg.
func NewClientCredentials(cfg Config) (*ClientCredentials, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	p := &ClientCredentials{cfg: cfg, now: time.Now}
	p.revoker.cfg = &p.cfg
	return p, nil
}

// Issue requests a token for req.
func (p *ClientCredentials) Issue(ctx context.Context, req credentials.Request) (*credentials.Credential, error) {
	params := url.Values{}
	if req.Audience != "" {
		params.Set("audience", req.Audience)
	}
	for _, r := range req.Resources {
		params.Add("resource", r)
	}
	cc := clientcredentials.Config{TokenURL: p.cfg.TokenURL, Scopes: req.Scopes, EndpointParams: params}
	h := http.Header{}
	form := url.Values{}
	sent, err := p.cfg.Auth.apply(ctx, req.JWTIssuer, req.Agent, p.cfg.svidAudience(), form, h)
	if err != nil {
		return nil, err
	}
	switch p.cfg.Auth.kind {
	case authBasic:
		cc.ClientID, cc.ClientSecret, cc.AuthStyle = p.cfg.Auth.id, p.cfg.Auth.secret.Reveal(), oauth2.AuthStyleInHeader
	default:
		// client_secret_post and assertions: everything in the body.
		cc.ClientID, cc.ClientSecret, cc.AuthStyle = form.Get("client_id"), form.Get("client_secret"), oauth2.AuthStyleInParams
		for _, k := range []string{"client_assertion_type", "client_assertion"} {
			if v := form.Get(k); v != "" {
				params.Set(k, v)
			}
		}
	}
	now := p.now()
	tok, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, p.cfg.client()))
	if err != nil {
		return nil, p.tokenError(ctx, err, sent)
	}
	if !bearer(tok.TokenType) {
		return nil, errors.New("oauth: token endpoint issued a token that is not a bearer token; only bearer tokens are supported")
	}
	var expiresIn time.Duration
	if raw := tok.Extra("expires_in"); raw != nil {
		// x/oauth2 reads expires_in 0 as "no expiry": refuse it, as
		// TokenExchange does.
		j, _ := json.Marshal(raw)
		if _, err := seconds(j); err != nil {
			return nil, err
		}
	}
	if !tok.Expiry.IsZero() {
		expiresIn = tok.Expiry.Sub(now)
		if expiresIn <= 0 {
			return nil, errors.New("oauth: token endpoint issued an expired token")
		}
	}
	var scope string
	switch v := tok.Extra("scope").(type) {
	case nil:
	case string:
		scope = v
	default:
		// RFC 6749 §5.1: a space-separated string. Anything else cannot
		// be checked against the requirement: refuse it.
		return nil, errors.New("oauth: token endpoint answered a scope that is not a string")
	}
	c := credential(tok.AccessToken, expiresIn, scope, req, now)
	p.remember(c, req)
	return c, nil
}

// tokenError turns an x/oauth2 error into one that names no secret.
func (p *ClientCredentials) tokenError(ctx context.Context, err error, sent []string) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return newError("token", status, re.Body, sent)
	}
	var ue *url.Error
	if errors.As(err, &ue) || ctx.Err() != nil {
		return transportError(ctx, "token", err)
	}
	// x/oauth2's own complaints (a response without access_token, say)
	// quote no secret of ours, but may quote the server: scrub anyway.
	return fmt.Errorf("oauth: token endpoint: %s", clip(scrub(err.Error(), sent), maxDescription))
}

func bearer(tokenType string) bool {
	return tokenType == "" || http.CanonicalHeaderKey(tokenType) == "Bearer"
}
