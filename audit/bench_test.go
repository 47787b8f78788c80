package audit

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// benchWriters is how many goroutines write at once.
const benchWriters = 64

// BenchmarkFileSink measures events per second on disk, from 64 concurrent
// writers, the final flush included: buffered (Write returns once queued),
// durable (Write returns once fsynced, with group commit), and the naive
// baseline of one write and one fsync per event under a mutex.
func BenchmarkFileSink(b *testing.B) {
	key, _ := testKey("bench")
	ev := toolCall("call-01JD3X4Q2V7N8K9M0P1R2S3T4U")
	run := func(b *testing.B, write func(context.Context, Event) error, flush func(context.Context) error) {
		ctx := context.Background()
		b.ReportAllocs()
		b.SetParallelism((benchWriters + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.ResetTimer()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := write(ctx, ev); err != nil {
					b.Error(err)
					return
				}
			}
		})
		if err := flush(ctx); err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	}
	sink := func(b *testing.B, opts ...FileOption) {
		s, err := NewFileSink(b.TempDir(), append([]FileOption{WithSigningKey(key)}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		run(b, s.Write, s.Flush)
		if err := s.Shutdown(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("buffered", func(b *testing.B) { sink(b, WithBuffered(4096)) })
	b.Run("durable", func(b *testing.B) { sink(b) })
	b.Run("naive-fsync-per-event", func(b *testing.B) {
		f, err := os.OpenFile(filepath.Join(b.TempDir(), "naive.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		var mu sync.Mutex
		write := func(_ context.Context, e Event) error {
			p, err := json.Marshal(e)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if _, err := f.Write(append(p, '\n')); err != nil {
				return err
			}
			return f.Sync()
		}
		run(b, write, func(context.Context) error { return nil })
	})
}
