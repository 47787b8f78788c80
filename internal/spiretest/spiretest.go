// Package spiretest starts a real SPIRE server and agent for integration
// tests.
//
// The binaries are built by .ci/spire.sh (SPIRE v1.13.3) into
// $AGENTGUARD_SPIRE_BIN or ${XDG_CACHE_HOME:-$HOME/.cache}/agentguard/spire-v1.13.3/bin.
// Tests call [Require] (or [Start], which calls it) so that they are skipped
// when the binaries are absent, unless AGENTGUARD_REQUIRE_SPIRE=1, in which
// case they fail.
//
// The server and agent run on 127.0.0.1 with everything (configuration,
// datastore, keys, sockets, logs) in a fresh temporary directory, and are
// tuned so that registration changes reach workloads quickly: the server
// reloads its entry cache every 200ms and the agent syncs with the server
// every 200ms (both experimental settings in v1.13.3; the defaults are 5s
// each).
package spiretest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Version is the SPIRE release the harness is written against.
const Version = "v1.13.3"

const (
	// startTimeout bounds how long Start waits for each process to become
	// healthy.
	startTimeout = 60 * time.Second
	// cliTimeout bounds each spire-server/spire-agent CLI invocation.
	cliTimeout = 30 * time.Second
	// stopTimeout bounds how long a process gets to exit after SIGTERM
	// before it is killed.
	stopTimeout = 10 * time.Second
	// syncInterval is both the server's entry cache reload interval and the
	// agent's sync interval.
	syncInterval = "200ms"
	// logTail is how many lines of each log are printed when a test fails.
	logTail = 60
)

// Binaries returns the paths of spire-server and spire-agent: from
// $AGENTGUARD_SPIRE_BIN, else from the default cache directory
// ${XDG_CACHE_HOME:-$HOME/.cache}/agentguard/spire-v1.13.3/bin. ok is false
// when either is missing or not executable.
func Binaries() (server, agent string, ok bool) {
	dir := binDir()
	if dir == "" {
		return "", "", false
	}
	server = filepath.Join(dir, "spire-server")
	agent = filepath.Join(dir, "spire-agent")
	return server, agent, isExecutable(server) && isExecutable(agent)
}

func binDir() string {
	if dir := os.Getenv("AGENTGUARD_SPIRE_BIN"); dir != "" {
		return dir
	}
	// Same rule as .ci/spire.sh: ${XDG_CACHE_HOME:-$HOME/.cache}.
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home := os.Getenv("HOME")
		if home == "" {
			return ""
		}
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "agentguard", "spire-"+Version, "bin")
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// Require returns the paths of spire-server and spire-agent. When they are
// absent it skips t with a message naming .ci/spire.sh, or fails t if
// AGENTGUARD_REQUIRE_SPIRE=1 (as CI sets it).
func Require(t testing.TB) (server, agent string) {
	t.Helper()
	server, agent, ok := Binaries()
	if ok {
		return server, agent
	}
	msg := fmt.Sprintf("SPIRE %s binaries (spire-server, spire-agent) not found in %s; "+
		"build them with .ci/spire.sh (set AGENTGUARD_SPIRE_BIN to use another directory)",
		Version, binDir())
	if os.Getenv("AGENTGUARD_REQUIRE_SPIRE") == "1" {
		t.Fatalf("%s; AGENTGUARD_REQUIRE_SPIRE=1 makes this a failure", msg)
	}
	t.Skip(msg)
	return "", "" // unreachable: Skip stops the test
}

// SPIRE is a running SPIRE server and agent. Create one with [Start].
type SPIRE struct {
	serverBin, agentBin string
	dir                 string
	td                  spiffeid.TrustDomain
	serverSock          string // server API socket
	agentSock           string // workload API socket
	agentID             spiffeid.ID

	server, agent *process
}

// Start starts a SPIRE server for trustDomain (sqlite3 datastore, disk key
// manager, join_token node attestation, bound to 127.0.0.1 on a free port)
// and an agent attested with a fresh join token (unix workload attestor,
// trust bundle taken from the server), and waits until both are healthy.
// Everything lives in a new temporary directory. A cleanup registered on t
// stops both processes, waits for them and removes the directory; if the
// test failed it first logs the tail of each process's log.
func Start(t testing.TB, trustDomain string) *SPIRE {
	t.Helper()
	serverBin, agentBin := Require(t)
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		t.Fatalf("spiretest: invalid trust domain %q: %v", trustDomain, err)
	}

	// A short directory: unix socket paths must stay under 108 bytes, and
	// t.TempDir() paths contain the (possibly long) test name.
	dir, err := os.MkdirTemp("", "spire")
	if err != nil {
		t.Fatalf("spiretest: %v", err)
	}
	s := &SPIRE{
		serverBin:  serverBin,
		agentBin:   agentBin,
		dir:        dir,
		td:         td,
		serverSock: filepath.Join(dir, "server.sock"),
		agentSock:  filepath.Join(dir, "agent.sock"),
	}
	t.Cleanup(func() { s.cleanup(t) })

	port, err := freePort()
	if err != nil {
		t.Fatalf("spiretest: picking a port: %v", err)
	}

	// Server.
	serverConf := filepath.Join(dir, "server.conf")
	s.writeFile(t, serverConf, fmt.Sprintf(serverConfig,
		port, hclString(s.serverSock), hclString(td.Name()), hclString(filepath.Join(dir, "server")),
		syncInterval,
		hclString(filepath.Join(dir, "server", "datastore.sqlite3")),
		hclString(filepath.Join(dir, "server", "keys.json")),
	))
	begin := time.Now()
	s.server = s.startProcess(t, "spire-server", serverBin, "run", "-config", serverConf)
	s.waitHealthy(t, s.server, s.serverSock, serverBin, "healthcheck", "-socketPath", s.serverSock)
	t.Logf("spiretest: spire-server healthy on 127.0.0.1:%d after %v", port, time.Since(begin).Round(time.Millisecond))

	// Join token and trust bundle for the agent.
	begin = time.Now()
	var token struct {
		Value string `json:"value"`
	}
	s.serverJSON(t, &token, "token", "generate", "-ttl", "600")
	if token.Value == "" {
		t.Fatalf("spiretest: spire-server token generate returned no token")
	}
	s.agentID, err = spiffeid.FromSegments(td, "spire", "agent", "join_token", token.Value)
	if err != nil {
		t.Fatalf("spiretest: agent ID: %v", err)
	}
	bundle := filepath.Join(dir, "bundle.pem")
	s.writeFile(t, bundle, string(s.serverCLI(t, "bundle", "show", "-format", "pem")))

	// Agent.
	agentConf := filepath.Join(dir, "agent.conf")
	s.writeFile(t, agentConf, fmt.Sprintf(agentConfig,
		hclString(filepath.Join(dir, "agent")), port, hclString(s.agentSock), hclString(bundle),
		hclString(td.Name()), hclString(token.Value), syncInterval,
	))
	s.agent = s.startProcess(t, "spire-agent", agentBin, "run", "-config", agentConf)
	s.waitHealthy(t, s.agent, s.agentSock, agentBin, "healthcheck", "-socketPath", s.agentSock)
	t.Logf("spiretest: spire-agent %s healthy after %v", s.agentID, time.Since(begin).Round(time.Millisecond))
	return s
}

// serverConfig is formatted with: port, server socket, trust domain, data
// dir, cache reload interval, sqlite path, keys path.
const serverConfig = `server {
  bind_address = "127.0.0.1"
  bind_port = "%d"
  socket_path = %s
  trust_domain = %s
  data_dir = %s
  log_level = "DEBUG"
  ca_ttl = "24h"
  default_x509_svid_ttl = "1h"
  default_jwt_svid_ttl = "5m"

  experimental {
    # How often the server rebuilds its authorized-entry cache from the
    # datastore (default 5s): bounds how long a new or deleted entry takes
    # to be visible to agents.
    cache_reload_interval = %q
  }
}

plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = %s
    }
  }
  KeyManager "disk" {
    plugin_data {
      keys_path = %s
    }
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
}
`

// agentConfig is formatted with: data dir, server port, workload API socket,
// trust bundle path, trust domain, join token, sync interval.
const agentConfig = `agent {
  data_dir = %s
  log_level = "DEBUG"
  server_address = "127.0.0.1"
  server_port = "%d"
  socket_path = %s
  trust_bundle_path = %s
  trust_domain = %s
  join_token = %s

  experimental {
    # How often the agent fetches its authorized entries from the server
    # (default 5s).
    sync_interval = %q
  }
}

plugins {
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "memory" {
    plugin_data {}
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}
`

// hclString quotes s as an HCL string literal (HCL accepts JSON escapes).
func hclString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Addr returns the agent's Workload API address, "unix:///path/to/agent.sock",
// for workloadapi.WithAddr or SPIFFE_ENDPOINT_SOCKET.
func (s *SPIRE) Addr() string { return "unix://" + s.agentSock }

// TrustDomain returns the trust domain name, e.g. "example.org".
func (s *SPIRE) TrustDomain() string { return s.td.Name() }

// AgentID returns the agent's SPIFFE ID
// (spiffe://<td>/spire/agent/join_token/<token>), the parent of the entries
// created by CreateEntry.
func (s *SPIRE) AgentID() string { return s.agentID.String() }

// Dir returns the temporary directory holding configuration, data, sockets
// and logs (server.log, agent.log).
func (s *SPIRE) Dir() string { return s.dir }

// CreateEntry registers a workload entry for spiffeID under the agent and
// returns its entry ID. hint may be empty. Selectors are "type:value", e.g.
// "unix:uid:0". It fails t on error.
func (s *SPIRE) CreateEntry(t testing.TB, spiffeID, hint string, selectors ...string) string {
	t.Helper()
	if len(selectors) == 0 {
		t.Fatalf("spiretest: CreateEntry(%q) needs at least one selector", spiffeID)
	}
	args := []string{"entry", "create", "-parentID", s.agentID.String(), "-spiffeID", spiffeID}
	for _, sel := range selectors {
		args = append(args, "-selector", sel)
	}
	if hint != "" {
		args = append(args, "-hint", hint)
	}
	var resp struct {
		Results []struct {
			Status entryStatus `json:"status"`
			Entry  struct {
				ID string `json:"id"`
			} `json:"entry"`
		} `json:"results"`
	}
	s.serverJSON(t, &resp, args...)
	if len(resp.Results) != 1 {
		t.Fatalf("spiretest: entry create %s: got %d results, want 1", spiffeID, len(resp.Results))
	}
	r := resp.Results[0]
	if r.Status.Code != 0 || r.Entry.ID == "" {
		t.Fatalf("spiretest: entry create %s: status %d %q, entry ID %q", spiffeID, r.Status.Code, r.Status.Message, r.Entry.ID)
	}
	return r.Entry.ID
}

// DeleteEntry deletes the registration entry entryID. It fails t on error.
func (s *SPIRE) DeleteEntry(t testing.TB, entryID string) {
	t.Helper()
	var resp struct {
		Results []struct {
			Status entryStatus `json:"status"`
			ID     string      `json:"id"`
		} `json:"results"`
	}
	s.serverJSON(t, &resp, "entry", "delete", "-entryID", entryID)
	if len(resp.Results) != 1 {
		t.Fatalf("spiretest: entry delete %s: got %d results, want 1", entryID, len(resp.Results))
	}
	if st := resp.Results[0].Status; st.Code != 0 {
		t.Fatalf("spiretest: entry delete %s: status %d %q", entryID, st.Code, st.Message)
	}
}

type entryStatus struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// serverCLI runs a spire-server subcommand (args, flags included) against
// the server's API socket, appending -socketPath, and returns its standard
// output.
func (s *SPIRE) serverCLI(t testing.TB, args ...string) []byte {
	t.Helper()
	full := append([]string{}, args...)
	full = append(full, "-socketPath", s.serverSock)
	out, err := runCLI(s.serverBin, full...)
	if err != nil {
		t.Fatalf("spiretest: %v", err)
	}
	return out
}

// serverJSON runs a spire-server subcommand with -output json and decodes
// its output into v.
func (s *SPIRE) serverJSON(t testing.TB, v any, args ...string) {
	t.Helper()
	out := s.serverCLI(t, append(append([]string{}, args...), "-output", "json")...)
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("spiretest: spire-server %s: decoding output: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func runCLI(bin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w\nstdout: %s\nstderr: %s",
			filepath.Base(bin), strings.Join(args, " "), err, bytes.TrimSpace(stdout.Bytes()), bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

// process is a long-running spire-server or spire-agent.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // Wait's result, valid after done is closed
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (s *SPIRE) startProcess(t testing.TB, name, bin string, args ...string) *process {
	t.Helper()
	logPath := filepath.Join(s.dir, strings.TrimPrefix(name, "spire-")+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("spiretest: %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// On Linux the child is SIGKILLed if the test binary dies without
	// running cleanups (panic, -timeout), so it cannot outlive the test.
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("spiretest: starting %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p
}

// waitHealthy polls the healthcheck subcommand until it succeeds, the
// process exits, or startTimeout passes.
func (s *SPIRE) waitHealthy(t testing.TB, p *process, sock, bin string, args ...string) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for {
		if p.exited() {
			t.Fatalf("spiretest: %s exited before becoming healthy: %v", p.name, p.err)
		}
		// Launching the CLI costs far more than a stat, so wait for the
		// socket to appear first.
		if _, err := os.Stat(sock); err == nil {
			if _, lastErr = runCLI(bin, args...); lastErr == nil {
				return
			}
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("spiretest: %s not healthy after %v: %v", p.name, startTimeout, lastErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *SPIRE) cleanup(t testing.TB) {
	// Agent first, so that it does not log connection errors for a
	// vanished server.
	for _, p := range []*process{s.agent, s.server} {
		if p != nil {
			p.stop(t)
		}
	}
	if t.Failed() {
		for _, p := range []*process{s.server, s.agent} {
			if p != nil {
				t.Logf("spiretest: last %d lines of %s log (%s):\n%s", logTail, p.name, p.logPath, tail(p.logPath, logTail))
			}
		}
	}
	if err := os.RemoveAll(s.dir); err != nil {
		t.Errorf("spiretest: removing %s: %v", s.dir, err)
	}
}

// stop sends SIGTERM, then SIGKILL after stopTimeout, and waits for exit.
func (p *process) stop(t testing.TB) {
	if p.exited() {
		t.Logf("spiretest: %s had already exited: %v", p.name, p.err)
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Logf("spiretest: SIGTERM %s: %v", p.name, err)
	}
	select {
	case <-p.done:
		return
	case <-time.After(stopTimeout):
	}
	t.Logf("spiretest: %s did not exit %v after SIGTERM; killing it", p.name, stopTimeout)
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("spiretest: killing %s: %v", p.name, err)
	}
	<-p.done
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (s *SPIRE) writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatalf("spiretest: %v", err)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(port)
}
