package credentials

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// SVIDProvider hands the acting agent's JWT-SVID to tools as their
// credential, for services that trust the SPIFFE bundle directly (they
// verify it with go-spiffe, or identity.VerifyJWTSVID). The SVID is minted
// for the requirement's audience and resources; it proves which agent is
// calling and carries no scopes, so a requirement with scopes is refused:
// the service authorizes by SPIFFE ID.
//
// A JWT-SVID cannot be revoked: Revoke returns ErrNotRevocable, and the
// token stays valid at the service until it expires (SPIRE's default is
// five minutes). The lease itself never outlives the task: the broker stops
// handing it out at the task's deadline.
type SVIDProvider struct {
	now func() time.Time
}

var _ Provider = (*SVIDProvider)(nil)

// NewSVIDProvider returns a provider of JWT-SVIDs. The SVIDs come from
// each request's JWTIssuer, which the guard takes from its identity source.
func NewSVIDProvider() *SVIDProvider { return &SVIDProvider{now: time.Now} }

// Issue mints a JWT-SVID of req.Agent for req.Audience and req.Resources.
func (p *SVIDProvider) Issue(ctx context.Context, req Request) (*Credential, error) {
	if req.JWTIssuer == nil {
		return nil, errors.New("credentials: the agent's identity source cannot mint JWT-SVIDs")
	}
	if req.Audience == "" {
		return nil, errors.New("credentials: a JWT-SVID needs an audience")
	}
	if len(req.Scopes) > 0 {
		return nil, fmt.Errorf("credentials: a JWT-SVID carries no scopes, but %d are required", len(req.Scopes))
	}
	s, err := req.JWTIssuer.JWTSVID(ctx, req.Audience, req.Resources...)
	if err != nil {
		return nil, fmt.Errorf("credentials: JWT-SVID: %w", err)
	}
	if req.Agent != "" && s.ID.String() != req.Agent {
		return nil, fmt.Errorf("credentials: JWT-SVID names %s, not the acting agent %s", s.ID, req.Agent)
	}
	return &Credential{Secret: NewSecret(s.Marshal()), IssuedAt: p.now(), ExpiresAt: s.Expiry}, nil
}

// Revoke returns ErrNotRevocable: a JWT-SVID is valid until it expires.
func (p *SVIDProvider) Revoke(context.Context, *Credential) error { return ErrNotRevocable }
