package integration_test

import (
	"bytes"
	"log/slog"
	"sync"
)

// safeBuffer is a bytes.Buffer safe for concurrent writers, for logs.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *safeBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func audienceHas(claims map[string]any, aud string) bool {
	switch a := claims["aud"].(type) {
	case string:
		return a == aud
	case []any:
		for _, v := range a {
			if v == aud {
				return true
			}
		}
	}
	return false
}
