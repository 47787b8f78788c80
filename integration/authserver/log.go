package authserver

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"slices"
	"strings"
	"sync"
)

// op logs through slog.Default (its logger options are deprecated no-ops),
// passing the request's context. To put what op logs about a request into
// the log of the test that started the server, Start installs, once per
// process, a default handler that sends records whose context carries a
// Server's sink to that test's t.Log, and every other record to the
// handler that was the default before; in both cases warnings and errors
// only.
//
// What op logs at those levels is its error responses: error code,
// description and cause. This package never puts a token into any of
// them; the causes it adds come from identity.VerifyJWTSVID, whose errors
// name claims and trust domains, not tokens.

type logSinkKey struct{}

// logSink receives one formatted record.
type logSink func(string)

func withLogSink(ctx context.Context, sink logSink) context.Context {
	return context.WithValue(ctx, logSinkKey{}, sink)
}

func sinkOf(ctx context.Context) logSink {
	if ctx == nil {
		return nil
	}
	sink, _ := ctx.Value(logSinkKey{}).(logSink)
	return sink
}

// installLogRouter installs the router. slog.SetDefault also redirects the
// log package's output into the new handler (and clears its flags); that is
// undone, so that log.Print writes where it did, as it did, and the router
// can hand records on to slog's built-in handler (which writes through the
// log package) without a deadlock.
var installLogRouter = sync.OnceFunc(func() {
	out, flags := log.Writer(), log.Flags()
	slog.SetDefault(slog.New(&logRouter{next: slog.Default().Handler()}))
	log.SetOutput(out)
	log.SetFlags(flags)
})

// logRouter is the slog.Handler described above.
type logRouter struct {
	next slog.Handler
	with []func(slog.Handler) slog.Handler // WithAttrs and WithGroup calls, to replay for a sink
}

func (h *logRouter) Enabled(ctx context.Context, l slog.Level) bool {
	// Below warnings, op logs only its start-up ("registered route"), a
	// dozen lines per server that would bury the test output.
	return l >= slog.LevelWarn && (sinkOf(ctx) != nil || h.next.Enabled(ctx, l))
}

func (h *logRouter) Handle(ctx context.Context, r slog.Record) error {
	sink := sinkOf(ctx)
	if sink == nil {
		return h.next.Handle(ctx, r)
	}
	var buf bytes.Buffer
	var th slog.Handler = slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	for _, w := range h.with {
		th = w(th)
	}
	if err := th.Handle(ctx, r); err != nil {
		return err
	}
	sink(strings.TrimSuffix(buf.String(), "\n"))
	return nil
}

func (h *logRouter) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRouter{
		next: h.next.WithAttrs(as),
		with: append(slices.Clip(h.with), func(x slog.Handler) slog.Handler { return x.WithAttrs(as) }),
	}
}

func (h *logRouter) WithGroup(name string) slog.Handler {
	return &logRouter{
		next: h.next.WithGroup(name),
		with: append(slices.Clip(h.with), func(x slog.Handler) slog.Handler { return x.WithGroup(name) }),
	}
}
