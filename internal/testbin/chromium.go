package testbin

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Chromium is a headless Chromium for tests that look at a page the way a
// browser does: the DOM after parsing (and after any script, were there
// one), and a screenshot.
type Chromium struct {
	bin  string
	home string
}

// RequireChromium finds chromium (Debian package "chromium"); a missing
// one skips the test, or fails it where CI=true.
func RequireChromium(t testing.TB) *Chromium {
	t.Helper()
	bin := Require(t, "chromium")
	return &Chromium{bin: bin, home: t.TempDir()}
}

// run runs one headless Chromium with its own profile. --no-sandbox: the
// tests run as root in containers, where the sandbox cannot start.
func (c *Chromium) run(t testing.TB, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	profile, err := os.MkdirTemp(c.home, "profile-")
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--disable-extensions", "--hide-scrollbars", "--user-data-dir=" + profile}
	cmd := exec.CommandContext(ctx, c.bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+c.home)
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.b)
	}
	return out
}

// DumpDOM loads url and returns the DOM Chromium built, serialized.
func (c *Chromium) DumpDOM(t testing.TB, url string) string {
	t.Helper()
	return string(c.run(t, "--dump-dom", url))
}

// Screenshot loads url in a window of width x height and saves a PNG.
func (c *Chromium) Screenshot(t testing.TB, url, path string, width, height int) {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	c.run(t, "--screenshot="+abs, fmt.Sprintf("--window-size=%d,%d", width, height), url)
	if st, err := os.Stat(abs); err != nil || st.Size() == 0 {
		t.Fatalf("chromium left no screenshot at %s: %v", abs, err)
	}
}

// limitedBuffer keeps the last 8 KiB of Chromium's chatty stderr.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.b = append(l.b, p...)
	if len(l.b) > 8<<10 {
		l.b = l.b[len(l.b)-8<<10:]
	}
	return len(p), nil
}
