package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
)

// KeyID names an Ed25519 public key in checkpoints: "ed25519:" and the
// first 16 hex digits of the SHA-256 of the key. It identifies the key;
// it does not reveal anything that would help forge a signature.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519:" + hex.EncodeToString(sum[:8])
}

// ParsePrivateKey reads an Ed25519 private key from a PEM "PRIVATE KEY"
// block (PKCS #8), as written by "openssl genpkey -algorithm ed25519".
// Its errors never contain key material.
func ParsePrivateKey(pemBytes []byte) (ed25519.PrivateKey, error) {
	b, _ := pem.Decode(pemBytes)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("audit: private key: no PEM \"PRIVATE KEY\" block")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, errors.New("audit: private key: not a valid PKCS #8 key")
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("audit: private key: %T is not an Ed25519 key", k)
	}
	return ek, nil
}

// ParsePublicKey reads an Ed25519 public key from a PEM "PUBLIC KEY" block
// (PKIX), as written by "openssl pkey -pubout".
func ParsePublicKey(pemBytes []byte) (ed25519.PublicKey, error) {
	b, _ := pem.Decode(pemBytes)
	if b == nil || b.Type != "PUBLIC KEY" {
		return nil, errors.New("audit: public key: no PEM \"PUBLIC KEY\" block")
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit: public key: %w", err)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("audit: public key: %T is not an Ed25519 key", k)
	}
	return ek, nil
}

// signer holds the checkpoint signing key. It is only ever used through a
// pointer, and it prints as its key ID, so neither fmt nor a log line can
// reveal the key.
type signer struct {
	key ed25519.PrivateKey
	id  string
}

func newSigner(k ed25519.PrivateKey) (*signer, error) {
	if len(k) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("audit: signing key has %d bytes, want an Ed25519 private key of %d", len(k), ed25519.PrivateKeySize)
	}
	pub, _ := k.Public().(ed25519.PublicKey)
	return &signer{key: k, id: KeyID(pub)}, nil
}

func (s *signer) sign(msg []byte) []byte { return ed25519.Sign(s.key, msg) }

func (s *signer) public() ed25519.PublicKey {
	pub, _ := s.key.Public().(ed25519.PublicKey)
	return pub
}

// String returns the key ID, never the key.
func (s *signer) String() string { return "audit.signer(" + s.id + ")" }

// Format prints the key ID whatever the verb and flags.
func (s *signer) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }
