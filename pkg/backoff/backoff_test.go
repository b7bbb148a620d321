package backoff

import (
	"testing"
	"time"
)

func TestDoublesToMaxAndResets(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("step %d: %s, want %s", i, got, w*time.Millisecond)
		}
	}
	b.Reset()
	if got := b.Next(); got != 100*time.Millisecond {
		t.Fatalf("after Reset: %s, want 100ms", got)
	}
}

func TestJitterStaysInUpperHalf(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 8 * time.Second, Jitter: true}
	step := time.Second
	for i := 0; i < 200; i++ {
		d := b.Next()
		if d < step/2 || d > step {
			t.Fatalf("step %d: %s outside [%s, %s]", i, d, step/2, step)
		}
		step = min(step*2, 8*time.Second)
	}
}
