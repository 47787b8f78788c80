package authserver

import (
	"context"
	"net/http"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// opServer is op's LegacyServer with two methods overridden, through the
// extension point op provides for this (op.ExtendedLegacyServer: "allows
// embedding LegacyServer in a struct, so that its methods can be
// individually overridden"). Every grant is still op's own code.
type opServer struct {
	*op.LegacyServer
	store *storage
}

var _ op.ExtendedLegacyServer = (*opServer)(nil)

// VerifyClient authenticates the client of a token or revocation request.
//
// It replaces LegacyServer.VerifyClient, which cannot accept a JWT-SVID as
// client assertion: op verifies RFC 7523 client assertions with its
// JWTProfileVerifier, which requires iss == sub == client_id and looks the
// key up per client (GetKeyByIDAndClientID), whereas a JWT-SVID has no
// "iss", names a SPIFFE ID, and is verified against the trust domain's
// bundle. For client_credentials, LegacyServer.VerifyClient also accepts
// only a client secret.
//
// op has already parsed the credentials (client_secret_basic or
// client_secret_post, or client_assertion with client_assertion_type
// urn:ietf:params:oauth:client-assertion-type:jwt-bearer) and refused
// requests using two methods. A failure is 401 invalid_client.
func (s *opServer) VerifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	cc := r.Data
	var (
		c   *client
		err error
	)
	switch {
	case cc.ClientAssertion != "":
		c, err = s.store.authenticateSVID(cc.ClientID, cc.ClientAssertion)
		if err != nil {
			return nil, invalidClient(err, "JWT-SVID client assertion refused: %s", err.Error())
		}
	case cc.ClientSecret != "":
		c, err = s.store.authenticateSecret(cc.ClientID, cc.ClientSecret)
		if err != nil {
			return nil, invalidClient(err, "client authentication failed")
		}
	default:
		return nil, invalidClient(nil, "client authentication required: a client secret or a JWT-SVID client assertion")
	}
	return c, nil
}

func invalidClient(parent error, format string, args ...any) error {
	e := oidc.ErrInvalidClient().WithDescription(format, args...)
	if parent != nil {
		e = e.WithParent(parent)
	}
	return op.NewStatusError(e, http.StatusUnauthorized)
}

// TokenExchange adds the RFC 8707 resource values of a token exchange to
// its audience, then runs LegacyServer.TokenExchange. op passes resource to
// the storage (which checks it like audience) but signs only audience into
// the access token; after this, the token's "aud" holds both.
func (s *opServer) TokenExchange(ctx context.Context, r *op.ClientRequest[oidc.TokenExchangeRequest]) (*op.Response, error) {
	for _, res := range r.Data.Resource {
		if !slices.Contains(r.Data.Audience, res) {
			r.Data.Audience = append(r.Data.Audience, res)
		}
	}
	return s.LegacyServer.TokenExchange(ctx, r)
}
