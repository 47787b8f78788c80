package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/agentguard/go-sdk/credentials"
)

// Token type identifiers of RFC 8693 §3.
const (
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
	GrantTypeExchange    = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// Mode says whose token a TokenExchange presents as the subject.
type Mode int

const (
	// AsAgent presents the agent's JWT-SVID as the subject token: the
	// issued token is the agent's own.
	AsAgent Mode = iota
	// OnBehalfOfUser presents the task's user token
	// (credentials.Request.UserToken) as the subject and the agent's
	// JWT-SVID as the actor token: the issued token acts for the user,
	// and names the agent as its actor. A task without a user token is
	// refused.
	OnBehalfOfUser
)

func (m Mode) String() string {
	if m == OnBehalfOfUser {
		return "on-behalf-of-user"
	}
	return "as-agent"
}

// TokenExchange issues credentials by RFC 8693 token exchange. It is a
// credentials.Provider, safe for concurrent use.
type TokenExchange struct {
	cfg  Config
	mode Mode
	// UserTokenType is the subject_token_type of user tokens in
	// OnBehalfOfUser mode; the default is TokenTypeAccessToken.
	UserTokenType string
	now           func() time.Time
	revoker
}

var _ credentials.Provider = (*TokenExchange)(nil)

// NewTokenExchange returns a token exchange provider for cfg.
func NewTokenExchange(cfg Config, mode Mode) (*TokenExchange, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if mode != AsAgent && mode != OnBehalfOfUser {
		return nil, fmt.Errorf("oauth: unknown token exchange mode %d", mode)
	}
	p := &TokenExchange{cfg: cfg, mode: mode, now: time.Now}
	p.revoker.cfg = &p.cfg
	return p, nil
}

// Issue exchanges the subject token (and actor token) for an access token
// for req's audience, resources and scopes.
func (p *TokenExchange) Issue(ctx context.Context, req credentials.Request) (*credentials.Credential, error) {
	agent, err := svid(ctx, req.JWTIssuer, req.Agent, p.cfg.svidAudience())
	if err != nil {
		return nil, err
	}
	form := url.Values{
		"grant_type":           {GrantTypeExchange},
		"requested_token_type": {TokenTypeAccessToken},
	}
	sent := []string{agent.Marshal()}
	switch p.mode {
	case AsAgent:
		form.Set("subject_token", agent.Marshal())
		form.Set("subject_token_type", TokenTypeJWT)
	case OnBehalfOfUser:
		user := req.UserToken.Reveal()
		if user == "" {
			return nil, errors.New("oauth: on-behalf-of token exchange for a task without a user token")
		}
		typ := p.UserTokenType
		if typ == "" {
			typ = TokenTypeAccessToken
		}
		form.Set("subject_token", user)
		form.Set("subject_token_type", typ)
		form.Set("actor_token", agent.Marshal())
		form.Set("actor_token_type", TokenTypeJWT)
		sent = append(sent, user)
	}
	if req.Audience != "" {
		form.Set("audience", req.Audience)
	}
	for _, r := range req.Resources {
		form.Add("resource", r)
	}
	if len(req.Scopes) > 0 {
		form.Set("scope", strings.Join(req.Scopes, " "))
	}
	h := http.Header{}
	authSent, err := p.cfg.Auth.apply(ctx, req.JWTIssuer, req.Agent, p.cfg.svidAudience(), form, h)
	if err != nil {
		return nil, err
	}
	sent = append(sent, authSent...)

	now := p.now()
	status, body, err := p.cfg.post(ctx, "token", p.cfg.TokenURL, form, h.Get("Authorization"))
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, newError("token", status, body, sent)
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, errors.New("oauth: token endpoint answered 200 with a body that is not a token response")
	}
	if tr.AccessToken == "" {
		return nil, errors.New("oauth: token endpoint answered 200 without an access_token")
	}
	// RFC 8693: token_type is "Bearer" for an access token, or "N_A"
	// when the token is not one to present as such.
	if !bearer(tr.TokenType) {
		return nil, errors.New("oauth: token endpoint issued a token that is not a bearer token; only bearer tokens are supported")
	}
	if tr.IssuedTokenType != "" && tr.IssuedTokenType != TokenTypeAccessToken {
		return nil, errors.New("oauth: token endpoint issued a token of another type than the access token asked for")
	}
	expiresIn, err := seconds(tr.ExpiresIn)
	if err != nil {
		return nil, err
	}
	c := credential(tr.AccessToken, expiresIn, tr.Scope, req, now)
	p.remember(c, req)
	return c, nil
}

// seconds parses expires_in, a number (or, from some servers, a string).
func seconds(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	s := strings.Trim(string(raw), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > 1<<31 {
		return 0, errors.New("oauth: token endpoint answered a bad expires_in")
	}
	if n == 0 {
		return 0, errors.New("oauth: token endpoint issued an expired token")
	}
	return time.Duration(n) * time.Second, nil
}
