package docker

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// published is the host port docker published port (e.g. "9090/tcp") of
// container c on.
func published(t *testing.T, c, port string) int {
	t.Helper()
	out := must(t, "docker", "port", c, port)
	line, _, _ := strings.Cut(out, "\n")
	_, p, err := net.SplitHostPort(strings.TrimSpace(line))
	n, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil {
		t.Fatalf("docker port %s %s: %q", c, port, out)
	}
	return n
}

// TestCombinedImageDropIn runs the combined image the way the original
// meltwater/proxymatic ran, with nothing but the original's variables
// (MARATHON_URL, HAPROXY, VHOST_DOMAIN; the vhost port is its default 80),
// on a network of its own with the stand-in Marathon and a backend, its
// ports published on the host's loopback as the original README's
// `docker run -p 80:80` did. It serves through HAProxy and nginx, /status
// answers, the HEALTHCHECK turns healthy, and `docker stop` drains: /status
// says TERMINATING and the proxies keep serving until the stop timeout. A
// second one with only MARATHON_URL serves through pen, the original's
// default.
func TestCombinedImageDropIn(t *testing.T) {
	images(t)
	name := fmt.Sprintf("proxymatic-dropin-%d", os.Getpid())
	must(t, "docker", "network", "create", name)
	var containers []string
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := run("docker", "logs", "--tail", "80", name)
			t.Logf("docker logs %s:\n%s", name, out)
		}
		if len(containers) > 0 {
			run("docker", append([]string{"rm", "-f", "-v"}, containers...)...) // -v: the image's anonymous VOLUME too
		}
		run("docker", "network", "rm", name)
	})
	start := func(c string, args ...string) {
		t.Helper()
		containers = append(containers, c)
		must(t, "docker", append([]string{"run", "-d", "--name", c, "--network", name}, args...)...)
	}

	start(name+"-marathon", "--init", "-p", "127.0.0.1::8080", stubImage, "marathonstub", "-listen", "0.0.0.0:8080")
	start(name+"-backend-1", "--init", stubImage, "backend", "-name", "backend-1", "-listen", "0.0.0.0:8080")
	marathon := published(t, name+"-marathon", "8080/tcp")
	backendIP := must(t, "docker", "inspect", "--format", "{{(index .NetworkSettings.Networks \""+name+"\").IPAddress}}", name+"-backend-1")
	// A task on its agent's address and host port, as Marathon reports it.
	app := marathontest.BridgeApp("/web", 10001).WithTask(backendIP, 8080)
	eventually(t, "the stand-in Marathon taking /web", func() bool { return setApps(marathon, app) == nil })

	begin := time.Now()
	start(name, "-p", "127.0.0.1::9090", "-p", "127.0.0.1::80", "-p", "127.0.0.1::10001",
		"-e", "MARATHON_URL=http://"+name+"-marathon:8080", "-e", "HAPROXY=true", "-e", "VHOST_DOMAIN=e2e.test",
		reloadImage)
	ha := target{published(t, name, "10001/tcp"), ""}
	nginx := target{published(t, name, "80/tcp"), "web.e2e.test"}
	statusPort := published(t, name, "9090/tcp")

	follows(t, "the drop-in", []string{"backend-1"}, ha)
	servedAfter := time.Since(begin)
	follows(t, "the drop-in", []string{"backend-1"}, nginx)
	eventually(t, "/status answering 200", func() bool { code, _ := status(statusPort); return code == http.StatusOK })
	okAfter := time.Since(begin)
	eventually(t, "the HEALTHCHECK turning healthy", func() bool { return health(t, name) == "healthy" })
	t.Logf("start-up: first request through HAProxy %s after docker run, /status 200 after %s, healthy after %s",
		servedAfter.Round(10*time.Millisecond), okAfter.Round(10*time.Millisecond), time.Since(begin).Round(10*time.Millisecond))

	// The original's default proxy for TCP: pen, with nothing but MARATHON_URL.
	t.Run("pen by default", func(t *testing.T) {
		start(name+"-pen", "-p", "127.0.0.1::10001", "-e", "MARATHON_URL=http://"+name+"-marathon:8080", reloadImage)
		follows(t, "pen in the drop-in", []string{"backend-1"}, target{published(t, name+"-pen", "10001/tcp"), ""})
	})

	t.Run("docker stop drains", func(t *testing.T) { drain(t, name, statusPort, ha, nginx) })
}

// stopTimeout is the docker stop -t of the drain test: long enough that
// "kept serving until the timeout" and "stopped after a short delay" (the
// two-container default) cannot be confused.
const stopTimeout = 15 * time.Second

// drain checks #16's combined-entrypoint behaviour on SIGTERM, as the
// original had it: /status flips to TERMINATING and the proxies keep serving
// until the container is killed at the end of the stop timeout.
func drain(t *testing.T, name string, statusPort int, targets ...target) {
	l := startLoad(2, "/drain?delay=100ms", targets...)
	defer l.end()
	eventually(t, "the load being served", func() bool { return l.answered() > 0 })

	sigterm := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := run("docker", "stop", "-t", strconv.Itoa(int(stopTimeout.Seconds())), name)
		done <- err
	}()
	terminating := false
	var stopErr error
poll:
	for {
		select {
		case stopErr = <-done:
			break poll
		case <-time.After(100 * time.Millisecond):
		}
		if code, body := status(statusPort); code == http.StatusServiceUnavailable && strings.Contains(body, "TERMINATING") {
			terminating = true
		}
	}
	stopped := time.Since(sigterm)
	l.end()
	if stopErr != nil {
		t.Fatal(stopErr)
	}
	l.mu.Lock()
	servedFor := l.last.Sub(sigterm)
	l.mu.Unlock()
	exit := must(t, "docker", "inspect", "--format", "{{.State.ExitCode}}", name)
	t.Logf("docker stop -t %d: served until %s after SIGTERM, stopped after %s, exit %s; %s",
		int(stopTimeout.Seconds()), servedFor.Round(10*time.Millisecond), stopped.Round(10*time.Millisecond), exit, l)

	// Generous: requests take 100 ms, and the machine may be busy.
	if servedFor < stopTimeout-5*time.Second {
		t.Fatalf("the combined image served %s after SIGTERM and stopped after %s of a %s stop timeout; "+
			"#16 wants /status TERMINATING and the proxies serving until the stop timeout ends",
			servedFor.Round(10*time.Millisecond), stopped.Round(10*time.Millisecond), stopTimeout)
	}
	if !terminating {
		t.Error("/status never answered 503 TERMINATING between SIGTERM and the stop")
	}
	// The kill at the end cuts what is in flight, as it did with the
	// original; before it nothing may be lost.
	if n, first := l.lostBefore(sigterm.Add(stopTimeout - 2*time.Second)); n > 0 {
		t.Errorf("%d requests lost while draining (the first: %v)", n, first)
	}
}
