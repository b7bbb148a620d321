package fault

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// answers' failure message shows what came back last, not "" and nil.
func TestAnswersShowsTheLastAnswer(t *testing.T) {
	for _, c := range []struct {
		body string
		err  error
		want string
	}{
		{"web-2", nil, `(last "web-2", <nil>)`},
		{"", errors.New("connection refused"), `(last "", connection refused)`},
	} {
		rec := &fatalRecorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			answers(rec, 50*time.Millisecond, "web", func() (string, error) { return c.body, c.err }, "web-1")
		}()
		<-done
		if !strings.Contains(rec.msg, c.want) {
			t.Errorf("message %q does not show %s", rec.msg, c.want)
		}
	}
}
