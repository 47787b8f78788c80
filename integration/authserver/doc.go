// Package authserver starts a real OAuth 2.0 authorization server inside a
// test, for integration tests of AgentGuard's credential providers.
//
// The server is zitadel/oidc's OpenID Provider (github.com/zitadel/oidc/v3
// pkg/op, v3.52.0): op parses and validates every request, runs the
// grants, signs the tokens and writes the responses. This package supplies
// what op leaves to its user: an in-memory storage, and the client
// authentication op cannot do itself. No grant is hand-written.
//
//	srv := authserver.Start(t, authserver.Config{
//		Clients: []authserver.Client{{
//			ID:        "support-bot",
//			SPIFFEID:  "spiffe://example.org/agent/support-bot",
//			Scopes:    []string{"refunds:write"},
//			Audiences: []string{"https://payments.example.com"},
//		}},
//		Bundles: devIssuer, // a jwtbundle.Source, such as *identity.DevIssuer
//	})
//	// POST srv.TokenURL() ...
//	active, claims := srv.Introspect(t, accessToken)
//
// # What it serves
//
// Over plain HTTP on 127.0.0.1 (an httptest server, stopped by t.Cleanup):
//
//   - the token endpoint (TokenPath) with the client_credentials grant
//     (RFC 6749 section 4.4) and the token-exchange grant (RFC 8693);
//   - RFC 7009 revocation (RevocationPath) and RFC 7662 introspection
//     (IntrospectionPath) of access tokens;
//   - the signing keys (KeysPath) and discovery
//     (/.well-known/openid-configuration).
//
// Clients authenticate with client_secret_basic, client_secret_post, or an
// RFC 7523 client assertion that is a JWT-SVID (see [Client.SPIFFEID]).
// Access tokens are JWTs signed with ES256; the server remembers each one,
// so that revocation takes effect and introspection reports it.
//
// A token exchange takes as subject_token either a JWT-SVID
// (urn:ietf:params:oauth:token-type:jwt) addressed to the issuer URL or
// the token endpoint URL, whose SPIFFE ID becomes the token's subject, or
// an unrevoked access token of this server
// (urn:ietf:params:oauth:token-type:access_token, such as one from
// [Server.UserToken]), whose subject carries over. An actor_token (a
// JWT-SVID or an access token of this server) makes the token delegated:
// it gets the RFC 8693 "act" claim {"sub": actor}, nesting the subject
// token's own "act". Values of "resource" are treated as "audience"; both
// must be in [Client.Audiences] (else invalid_target), and every scope must
// be in [Client.Scopes] and, for an access-token subject, in that token's
// scope (else invalid_scope). Only access tokens are issued
// (requested_token_type urn:ietf:params:oauth:token-type:access_token, the
// default).
//
// A client-credentials token has the client as its subject and audience.
// Any authenticated client may introspect any token; a client may revoke
// only the tokens issued to it (revoking another's is refused with
// unauthorized_client and leaves the token active).
//
// Errors are RFC 6749 JSON bodies {"error": ..., "error_description": ...}.
// A failed client authentication is 401 invalid_client. op's own checks
// answer as op does: a request with no client_id and no client_assertion
// at all, or with two authentication methods, is 400 invalid_request; an
// unverifiable subject_token or actor_token is 400 invalid_request.
//
// # Overrides of op and why
//
// The server is op.LegacyServer embedded in a type that overrides two
// methods, through op.ExtendedLegacyServer, the extension point op offers
// for this:
//
//   - VerifyClient: op verifies client assertions with its JWT-profile
//     verifier, which requires iss == sub == client_id and a key registered
//     per client; a JWT-SVID has no "iss", names a SPIFFE ID and is
//     verified against a trust bundle. For client_credentials op also takes
//     only a client secret. The override verifies JWT-SVID assertions with
//     identity.VerifyJWTSVID against Config.Bundles, and secrets in
//     constant time.
//   - TokenExchange: adds the "resource" values to "audience" before op's
//     own TokenExchange, because op checks "resource" in storage but signs
//     only "audience" into the token.
//
// The storage is this package's own (storage.go), not op's example storage
// (example/server/storage), which would have needed most of its methods
// overridden and its unexported token map reached: its
// ValidateTokenExchangeRequest looks the subject up among its users and
// requires an administrator (a SPIFFE ID is no user);
// SetIntrospectionFromToken answers only for a subject that is one of its
// users and a caller in the token's audience; client-credentials tokens are
// recorded with no client, so RevokeToken refuses their client; its clients
// have unexported fields and a fixed 5-minute token life; and op's opaque
// tokens, which it issues by default, encode "id:subject", which a SPIFFE
// ID (with its colon) breaks. Of op's storage interfaces it implements:
//
//   - op.ClientCredentialsStorage: scopes checked per client;
//   - op.TokenExchangeStorage: ValidateTokenExchangeRequest does the
//     checks above and allows non-user subjects;
//     GetPrivateClaimsFromTokenExchangeRequest adds "act";
//   - op.TokenExchangeTokensVerifierStorage: VerifyExchangeSubjectToken
//     and VerifyExchangeActorToken verify JWT-SVIDs with
//     identity.VerifyJWTSVID (op verifies its own access tokens itself);
//   - op.Storage: CreateAccessToken records tokens, RevokeToken deletes
//     them (unknown tokens are success, per RFC 7009),
//     SetIntrospectionFromToken reports any live token whatever its
//     subject, GetKeyByIDAndClientID and ValidateJWTProfileScopes serve
//     UserToken's JWT-profile grant;
//   - op.JWTProfileTokenStorage: JWT access tokens for that grant too.
//
// Browser flows (authorization code, refresh tokens) are not offered.
//
// # Limits
//
//   - Introspection authenticates clients with a secret only: op's
//     LegacyServer.Introspect verifies client assertions with its
//     JWT-profile verifier, and was not overridden.
//   - A client-credentials request cannot ask for an audience: op's
//     ClientCredentialsTokenRequest gets only the client and scopes.
//   - A client may exchange any JWT-SVID addressed to this server, not only
//     one of its own SPIFFE ID; JWT-SVID assertions are not checked for
//     replay (SPIRE reuses JWT-SVIDs).
//
// # Logging
//
// op logs through slog.Default. Start installs once per process a default
// handler that sends what op logs while serving a request (warnings and
// errors: error responses and their causes) to the t.Log of the test that
// started the server, and passes every other record to the previous
// default handler. Nothing here logs a token.
package authserver
