package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/local"
)

// paymentsAudience is who the payments credential is for.
const paymentsAudience = "https://payments.example.com"

// paymentsAPI is a stand-in for the payments service, on a loopback port:
// it accepts only access tokens of the local issuer that are for it, carry
// the refunds:write scope, and have not been revoked.
type paymentsAPI struct {
	URL string
	srv *http.Server
	// kept is the last credential the refund tool used: the quickstart
	// shows that it is worthless once the task has ended.
	mu   sync.Mutex
	kept *credentials.Credential
}

func startPayments(v *local.Verifier) (*paymentsAPI, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("payments API: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /refunds", func(w http.ResponseWriter, r *http.Request) {
		c, _ := local.ClaimsFromContext(r.Context())
		var req struct {
			Order  string
			Amount int
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "refunded %d on %s (token of %s for task %s, scopes %s)",
			req.Amount, req.Order, c.Subject, c.TaskID, strings.Join(c.Scopes, " "))
	})
	p := &paymentsAPI{URL: "http://" + ln.Addr().String(), srv: &http.Server{
		Handler: v.Middleware(paymentsAudience, "refunds:write")(mux),
	}}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *paymentsAPI) close() { _ = p.srv.Close() }

// refund sends a refund to the API with the tool's credential, found in
// its context by name: the tool never sees where it came from.
func (p *paymentsAPI) refund(ctx context.Context, order string, amount int) (string, error) {
	cred, ok := credentials.FromContext(ctx, "payments")
	if !ok {
		return "", errors.New("no payments credential")
	}
	p.mu.Lock()
	p.kept = cred
	p.mu.Unlock()
	return p.post(ctx, cred, order, amount)
}

// post sends a refund with cred as its bearer token. The credential's
// transport sends it only to the payments API's URL.
func (p *paymentsAPI) post(ctx context.Context, cred *credentials.Credential, order string, amount int) (string, error) {
	body := fmt.Sprintf(`{"order":%q,"amount":%d}`, order, amount)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/refunds", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	client := &http.Client{Transport: cred.Transport(nil)}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("payments API answered %s (%s)", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	return string(b), nil
}

// replay sends the kept credential again.
func (p *paymentsAPI) replay(ctx context.Context) (string, error) {
	p.mu.Lock()
	cred := p.kept
	p.mu.Unlock()
	if cred == nil {
		return "", errors.New("no credential was kept")
	}
	return p.post(ctx, cred, "O-77", 40)
}
