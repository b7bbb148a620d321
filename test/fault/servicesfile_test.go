package fault

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The services file goes bad in every way we could think of while the
// agent serves through HAProxy and nginx: it keeps serving the last good
// config (real requests still answered), counts and logs why, never
// crashes or hangs, and applies the next good file.
func TestServicesFileFaults(t *testing.T) {
	web, api := newBackend(t, "web-1"), newBackend(t, "api-1")
	webPort, apiPort := freePort(t), freePort(t)
	if webPort > apiPort { // web first in the file, api last
		webPort, apiPort = apiPort, webPort
	}
	a := agentArgs(t, agentOpts{haproxy: true, nginx: true})
	good := a.write(t, svc("web", webPort, web), svc("api", apiPort, api))
	a.run(t)
	viaHAProxy := func() (string, error) { return tcpGet(webPort) }
	viaNginx := func() (string, error) { return a.vhostGet("web.test.example") }
	answers(t, 20*time.Second, "web via HAProxy", viaHAProxy, "web-1")
	answers(t, 10*time.Second, "web via nginx", viaNginx, "web-1")

	serving := func(t *testing.T) {
		t.Helper()
		stillAnswers(t, 300*time.Millisecond, "web via HAProxy", viaHAProxy, "web-1")
		stillAnswers(t, 100*time.Millisecond, "web via nginx", viaNginx, "web-1")
		if code, body := get(a.status + "/status"); code != http.StatusOK {
			t.Fatalf("/status %d %s during a file fault", code, body)
		}
		a.alive(t)
	}
	// restore puts the good file back and waits until it is applied again.
	restore := func(t *testing.T) {
		t.Helper()
		os.RemoveAll(a.file)
		before := a.metric(t, "proxymatic_reload_last_good_timestamp_seconds")
		a.writeRaw(t, good)
		eventually(t, 15*time.Second, "good file applied again", func() bool {
			a.alive(t)
			return a.metric(t, "proxymatic_reload_last_good_timestamp_seconds") > before
		})
		answers(t, 5*time.Second, "api via HAProxy", func() (string, error) { return tcpGet(apiPort) }, "api-1")
	}

	faults := []struct {
		name  string
		apply func(t *testing.T)
		log   string // what the agent says
	}{
		{"emptied", func(t *testing.T) { a.writeRaw(t, nil) }, "services file unusable"},
		{"truncated inside a quoted value", func(t *testing.T) {
			// A writer that is not atomic, cut inside the document's
			// first-line comment string: unterminated flow scalar.
			a.writeRaw(t, []byte("version: 1\nservices:\n- name: \"we"))
		}, "services file unusable"},
		{"not YAML", func(t *testing.T) { a.writeRaw(t, []byte("\x00\x01\x02{{{[[[ :: ]\n\t- ;{\"\n")) }, "services file unusable"},
		{"100 MB", func(t *testing.T) {
			big := bytes.Repeat([]byte("# padding padding padding padding padding padding padding padding padding padd\n"), 100<<20/80)
			a.writeRaw(t, append(append([]byte(nil), good...), big...))
		}, "larger than"},
		{"YAML alias bomb", func(t *testing.T) { a.writeRaw(t, aliasBomb()) }, "anchors and aliases are not allowed"},
		{"deleted", func(t *testing.T) { os.Remove(a.file) }, "no such file or directory"},
		{"replaced by a directory", func(t *testing.T) {
			os.Remove(a.file)
			if err := os.Mkdir(a.file, 0o755); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"replaced by a symlink loop", func(t *testing.T) {
			os.Remove(a.file)
			if err := os.Symlink(filepath.Base(a.file), a.file); err != nil {
				t.Fatal(err)
			}
		}, "too many levels of symbolic links"},
		{"replaced by a named pipe", func(t *testing.T) {
			// Opening a FIFO for reading blocks until a writer comes: a
			// reader that does not guard against it hangs for good.
			os.Remove(a.file)
			if err := syscall.Mkfifo(a.file, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
	}
	for _, f := range faults {
		t.Run(strings.ReplaceAll(f.name, " ", "_"), func(t *testing.T) {
			before := a.metric(t, "proxymatic_reload_file_errors_total")
			f.apply(t)
			a.waitFileError(t, before)
			a.waitLog(t, f.log, 5*time.Second)
			serving(t)
			restore(t)
		})
	}

	// A non-atomic writer cut inside the last service: there is no end
	// marker in services.yaml v1, so what remains is a document of its
	// own. The cut lands inside api's server address ("ip: 12"), which
	// makes exactly one outcome possible: the file is read and applied,
	// api is rejected (named, counted) and left out, web keeps serving.
	t.Run("truncated_inside_the_last_service", func(t *testing.T) {
		cut := bytes.LastIndex(good, []byte("ip: ")) + len("ip: 12")
		if !bytes.HasPrefix(good[cut-len("ip: 12"):], []byte("ip: 127.")) {
			t.Fatalf("the last server is not on 127.x: %q", good[cut-6:])
		}
		dropped := a.metric(t, "proxymatic_reload_dropped_services_total")
		applied := a.metric(t, "proxymatic_reload_last_good_timestamp_seconds")
		fileErrors := a.metric(t, "proxymatic_reload_file_errors_total")
		logged := len(a.log.String())
		a.writeRaw(t, good[:cut])
		eventually(t, 15*time.Second, "the cut file applied", func() bool {
			a.alive(t)
			return a.metric(t, "proxymatic_reload_last_good_timestamp_seconds") > applied
		})
		if got := a.metric(t, "proxymatic_reload_dropped_services_total") - dropped; got != 1 {
			t.Errorf("dropped services grew by %v, want 1 (the cut api)", got)
		}
		if got := a.metric(t, "proxymatic_reload_dropped_services"); got != 1 {
			t.Errorf("proxymatic_reload_dropped_services = %v, want 1", got)
		}
		if got := a.metric(t, "proxymatic_reload_file_errors_total"); got != fileErrors {
			t.Errorf("the cut file counted as unusable (%v -> %v); it is a valid, smaller document", fileErrors, got)
		}
		newLog := a.log.String()[logged:]
		if !strings.Contains(newLog, `msg="service left out" service=api`) || !strings.Contains(newLog, "field=servers[0].ip") {
			t.Errorf("api's rejection is not logged with its name and field:\n%s", newLog)
		}
		serving(t)
		eventually(t, 10*time.Second, "api no longer served", func() bool { _, err := tcpGet(apiPort); return err != nil })
		restore(t)
	})

	// Unreadable permissions: the suite runs as root, which CAP_DAC_OVERRIDE
	// lets read a mode-000 file, so chmod cannot make the file unreadable
	// here; the unreadable cases above (directory, loop, pipe) take its place.
	if os.Geteuid() == 0 {
		os.RemoveAll(a.file)
		a.writeRaw(t, good)
		if err := os.Chmod(a.file, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := os.ReadFile(a.file); err != nil {
			t.Fatalf("root could not read a mode-000 file: %v (then this case can be tested)", err)
		}
	}

	// After all that, a new good file still goes through.
	web2 := newBackend(t, "web-2")
	a.write(t, svc("web", webPort, web2), svc("api", apiPort, api))
	answers(t, 15*time.Second, "web via HAProxy after the faults", viaHAProxy, "web-2")
	answers(t, 10*time.Second, "web via nginx after the faults", viaNginx, "web-2")
}
