package local_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/local"
)

func TestConcurrentIssueVerifyRevoke(t *testing.T) {
	i, clk := newIssuer(t)
	s := serve(t, i)
	rv := remote(s, clk, local.WithRevocationMaxAge(0))
	v := i.Verifier()
	ctx := context.Background()

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for g := range n {
		wg.Go(func() {
			req := request()
			req.TaskID = fmt.Sprintf("task-%d", g)
			c, err := i.Issue(ctx, req)
			if err != nil {
				errs <- err
				return
			}
			tok := c.Secret.Reveal()
			for _, ver := range []*local.Verifier{v, rv} {
				if claims, err := ver.Verify(ctx, tok, audience, "read"); err != nil || claims.TaskID != req.TaskID {
					errs <- fmt.Errorf("goroutine %d: Verify = %v, %v", g, claims, err)
				}
			}
			if g%2 == 0 {
				return
			}
			if err := i.Revoke(ctx, c); err != nil {
				errs <- err
			}
			for _, ver := range []*local.Verifier{v, rv} {
				if _, err := ver.Verify(ctx, tok, audience); !errors.Is(err, credentials.ErrRevoked) {
					errs <- fmt.Errorf("goroutine %d: after Revoke, Verify = %v", g, err)
				}
			}
			_ = i.Revoked()
			_ = i.JWKS()
			if w := get(i.Handler(), http.MethodGet, "/revoked"); w.Code != http.StatusOK {
				errs <- fmt.Errorf("GET /revoked: %d", w.Code)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(i.Revoked()); got != n/2 {
		t.Errorf("%d revocations, want %d", got, n/2)
	}
}

func TestConcurrentRotateIssueVerify(t *testing.T) {
	i, _ := newIssuer(t)
	v := i.Verifier()
	ctx := context.Background()
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for g := range n {
		wg.Go(func() {
			if g%10 == 0 {
				if err := i.Rotate(); err != nil {
					errs <- err
				}
				return
			}
			c, err := i.Issue(ctx, request())
			if err != nil {
				errs <- err
				return
			}
			// Whatever rotations happened meanwhile, the token verifies.
			if _, err := v.Verify(ctx, c.Secret.Reveal(), audience, "write"); err != nil {
				errs <- fmt.Errorf("goroutine %d: %w", g, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
