package reload

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestConfigFileStageCommitDiscard(t *testing.T) {
	dir := t.TempDir()
	f := configFile{path: filepath.Join(dir, "haproxy.cfg")}
	if err := f.write([]byte("good")); err != nil {
		t.Fatal(err)
	}
	tmp, err := f.stage([]byte("candidate"))
	if err != nil {
		t.Fatal(err)
	}
	if live, _ := os.ReadFile(f.path); string(live) != "good" {
		t.Fatalf("staging touched the live file: %q", live)
	}
	f.discard(tmp)
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("discarded candidate still there: %v", err)
	}
	if live, _ := os.ReadFile(f.path); string(live) != "good" {
		t.Fatalf("discard touched the live file: %q", live)
	}
	tmp, err = f.stage([]byte("next"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.commit(tmp); err != nil {
		t.Fatal(err)
	}
	live, _ := os.ReadFile(f.path)
	st, _ := os.Stat(f.path)
	if string(live) != "next" || st.Mode().Perm() != ConfigMode {
		t.Fatalf("after commit: %q %v", live, st.Mode())
	}
}

// Only a proxy that failed to start or reload is retried with the same file;
// a rejected config or a bad file waits for a new file.
func TestTransient(t *testing.T) {
	start := fmt.Errorf("haproxy: start: %w: %w", errProxy, errors.New("bind"))
	rejected := fmt.Errorf("nginx: %w: %w", errRejected, errors.New("unknown directive"))
	for _, c := range []struct {
		err  error
		want bool
	}{
		{start, true},
		{rejected, false},
		{errors.Join(rejected, start), true},
		{errors.Join(rejected), false},
		{os.ErrNotExist, false},
	} {
		if got := transient(c.err); got != c.want {
			t.Errorf("transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
