package identity_test

import (
	"crypto/x509"

	"github.com/agentguard/go-sdk/identity"
)

// x509Opts verifies a leaf against iss's CAs.
func x509Opts(iss *identity.DevIssuer) x509.VerifyOptions {
	pool := x509.NewCertPool()
	for _, c := range iss.X509Bundle().X509Authorities() {
		pool.AddCert(c)
	}
	return x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
}
