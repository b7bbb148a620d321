package pen_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/golden"
	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/pen"
	"github.com/meltwater/proxymatic/pkg/services"
)

func srv(ip string, port, weight int) services.Server {
	return services.Server{IP: netip.MustParseAddr(ip), Port: port, Weight: weight}
}

var appKey = services.Key{Port: 10001, Protocol: services.TCP}

func svc(servers ...services.Server) services.Service {
	return services.Service{Name: "app", Port: 10001, Protocol: services.TCP, Mode: services.ModeTCP, Servers: servers}
}

func TestRenderGolden(t *testing.T) {
	a := srv("10.0.0.1", 31000, 1000)
	a.MaxConn = 25
	s := svc(a, srv("2001:db8::1", 31001, 500), srv("10.0.0.2", 31002, 0))
	cfg, err := pen.Render(pen.Params{Servers: 5}, s, pen.NewSlots(5))
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "10001-tcp.cfg.golden", cfg)
	if err := pen.Parse(cfg); err != nil {
		t.Fatal(err)
	}
}

var line = regexp.MustCompile(`^server (\d+) address (\S+) port (\d+) weight (\d+) max (\d+) hard (\d+)$`)

// slotsOf reads a rendered config back: the address in each slot, "" for a
// free one. It also checks that every slot is written and free ones are
// written as pen needs them to overwrite a removed server.
func slotsOf(t *testing.T, cfg []byte, size int) []string {
	t.Helper()
	out := make([]string, size)
	n := 0
	for _, l := range strings.Split(strings.TrimSuffix(string(cfg), "\n"), "\n") {
		if strings.HasPrefix(l, "#") || l == "http" || l == "no http" {
			continue
		}
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("unexpected line %q", l)
		}
		i, _ := strconv.Atoi(m[1])
		if i != n {
			t.Fatalf("slot %d written as %d", n, i)
		}
		n++
		if m[3] == "0" {
			if m[2] != "0.0.0.0" || m[4] != "0" || m[5] != "0" || m[6] != "0" {
				t.Fatalf("free slot not reset: %q", l)
			}
			continue
		}
		ip := netip.MustParseAddr(m[2])
		port, _ := strconv.Atoi(m[3])
		out[i] = netip.AddrPortFrom(ip, uint16(port)).String()
	}
	if n != size {
		t.Fatalf("%d slots written, want %d", n, size)
	}
	return out
}

// A server keeps its slot for as long as it is listed, whatever else is
// added or removed, and across a save and load (an agent restart).
func TestSlotsStableAcrossAddRemove(t *testing.T) {
	const size = 6
	pool := make([]services.Server, 10)
	for i := range pool {
		pool[i] = srv(fmt.Sprintf("10.0.1.%d", i+1), 8000+i, 100)
	}
	pool[9] = srv("2001:db8::9", 8009, 100)
	path := filepath.Join(t.TempDir(), "slots.json")
	slots := pen.NewSlots(size)
	rng := rand.New(rand.NewPCG(1, 2))
	prev := map[string]int{}
	for step := 0; step < 300; step++ {
		var list []services.Server
		for _, s := range pool {
			if rng.IntN(3) > 0 {
				list = append(list, s)
			}
		}
		s := svc(list...)
		f := services.File{Services: []services.Service{s}}
		f.Normalize()
		cfg, err := pen.Render(pen.Params{Servers: size}, f.Services[0], slots)
		if err != nil {
			t.Fatal(err)
		}
		got := slotsOf(t, cfg, size)
		now := map[string]int{}
		for i, a := range got {
			if a != "" {
				now[a] = i
			}
		}
		listed := map[string]bool{}
		for _, s := range list {
			listed[s.Address()] = true
		}
		for a, i := range prev {
			if listed[a] {
				if j, ok := now[a]; !ok || j != i {
					t.Fatalf("step %d: %s moved from slot %d to %d (present=%v)", step, a, i, j, ok)
				}
			}
		}
		for a := range now {
			if !listed[a] {
				t.Fatalf("step %d: %s is not listed but holds a slot", step, a)
			}
		}
		wantDropped := max(0, len(list)-size)
		if len(now) != len(list)-wantDropped || slots.Dropped(s.Key()) != wantDropped {
			t.Fatalf("step %d: %d of %d servers placed, dropped %d", step, len(now), len(list), slots.Dropped(s.Key()))
		}
		prev = now
		// Restart every few steps: the slots come back from disk.
		if step%7 == 0 {
			if err := slots.Save(path); err != nil {
				t.Fatal(err)
			}
			if slots, err = pen.LoadSlots(path, size); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// More servers than slots: the ones already placed keep serving, new ones
// wait for a free slot.
func TestSlotsOverflow(t *testing.T) {
	slots := pen.NewSlots(2)
	a, b, c := srv("10.0.0.1", 1, 1), srv("10.0.0.2", 1, 1), srv("10.0.0.3", 1, 1)
	render := func(list ...services.Server) []string {
		cfg, err := pen.Render(pen.Params{Servers: 2}, svc(list...), slots)
		if err != nil {
			t.Fatal(err)
		}
		return slotsOf(t, cfg, 2)
	}
	if got := render(b, c); got[0] != "10.0.0.2:1" || got[1] != "10.0.0.3:1" {
		t.Fatalf("first render: %v", got)
	}
	if got := render(a, b, c); got[0] != "10.0.0.2:1" || got[1] != "10.0.0.3:1" || slots.Dropped(appKey) != 1 {
		t.Fatalf("overflow moved servers or lost count: %v dropped=%d", got, slots.Dropped(appKey))
	}
	if got := render(a, c); got[0] != "10.0.0.1:1" || got[1] != "10.0.0.3:1" || slots.Dropped(appKey) != 0 {
		t.Fatalf("freed slot not reused: %v", got)
	}
}

func TestSlotsFile(t *testing.T) {
	dir := t.TempDir()
	path := pen.SlotsFile(dir)
	s, err := pen.LoadSlots(path, 4) // missing: empty
	if err != nil {
		t.Fatal(err)
	}
	udp := svc(srv("10.0.0.1", 53, 1), srv("10.0.0.2", 53, 1))
	udp.Protocol = services.UDP
	udp.Port = 53
	if _, err := pen.Render(pen.Params{Servers: 4}, udp, s); err != nil {
		t.Fatal(err)
	}
	if _, err := pen.Render(pen.Params{Servers: 4}, svc(srv("10.0.0.3", 80, 1)), s); err != nil {
		t.Fatal(err)
	}
	s.Retain([]services.Key{udp.Key()})
	if err := s.Save(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if string(data) != `{"version":1,"services":{"53/udp":["10.0.0.1:53","10.0.0.2:53"]}}`+"\n" {
		t.Errorf("saved %s", data)
	}
	// Fewer slots after a restart: servers beyond the end are placed again.
	s, err = pen.LoadSlots(path, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pen.Render(pen.Params{Servers: 1}, udp, s)
	if err != nil || !strings.Contains(string(cfg), "server 0 address 10.0.0.1 port 53 ") || s.Dropped(udp.Key()) != 1 {
		t.Errorf("after shrinking: %s %v", cfg, err)
	}
	for _, bad := range []string{"{", `{"version":2}`, `{"version":1,"services":{"x":[]}}`,
		`{"version":1,"services":{"53/udp":["nope"]}}`, `{"version":1,"services":{"53/udp":["1.2.3.4:5","1.2.3.4:5"]}}`} {
		os.WriteFile(path, []byte(bad), 0o644)
		if s, err := pen.LoadSlots(path, 4); err == nil || s == nil {
			t.Errorf("LoadSlots(%s) = %v, %v; want empty slots and an error", bad, s, err)
		}
	}
	if _, err := pen.Render(pen.Params{Servers: 3}, udp, pen.NewSlots(4)); err == nil {
		t.Error("slots of another size were accepted")
	}
}

func TestRenderRefusesInvalid(t *testing.T) {
	for name, mutate := range map[string]func(*services.Service){
		"newline in name": func(s *services.Service) { s.Name = "a\nserver 0 address 6.6.6.6 port 66 weight 1" },
		"bad protocol":    func(s *services.Service) { s.Protocol = "sctp" },
		"zero port":       func(s *services.Service) { s.Port = 0 },
		"invalid ip":      func(s *services.Service) { s.Servers[0].IP = netip.Addr{} },
		"server port 0":   func(s *services.Service) { s.Servers[0].Port = 0 },
		"weight 5000":     func(s *services.Service) { s.Servers[0].Weight = 5000 },
		"bad host":        func(s *services.Service) { s.Servers[0].Host = "a b" },
	} {
		s := svc(srv("10.0.0.1", 80, 1))
		mutate(&s)
		if cfg, err := pen.Render(pen.Params{Servers: 2}, s, pen.NewSlots(2)); err == nil || cfg != nil {
			t.Errorf("%s: rendered %q", name, cfg)
		}
	}
}

func TestParse(t *testing.T) {
	good := []string{
		"",
		"# comment\n\nserver 0 address 10.0.0.1 port 80 weight 1 max 0 hard 0\n",
		"server 0 address 0.0.0.0 port 0 weight 0\nserver 1 address 2001:db8::1 port 53 weight 1000 max 5 hard 5 prio 1\n",
		"blacklist 30\nno stubborn\nweight\nserver 3 port 1 address 10.0.0.1\n",
	}
	for _, g := range good {
		if err := pen.Parse([]byte(g)); err != nil {
			t.Errorf("Parse(%q) = %v", g, err)
		}
	}
	bad := []string{
		"bogus line",
		"server 0 address 10.0.0.1 port 80 weight 1\nserver 0 address 10.0.0.2 port 80 weight 1",
		"server 0 address www.example.com port 80",
		"server 0 address 10.0.0.1 port 70000",
		"server 0 address 10.0.0.1 port 0",
		"server 0 port 80",
		"server 0 address 10.0.0.1",
		"server x address 10.0.0.1 port 80",
		"server 0 address 10.0.0.1 port 80 weight -1",
		"server 0 address 10.0.0.1 port 80 weight",
		"server 0 address 10.0.0.1 port 80 acl 1",
		"server 0 address 10.0.0.1  port 80",
		"server 0 address 10.0.0.1\tport 80",
		"server 0 address 10.0.0.1 port 80 port 81",
		"server 0 address fe80::1%eth0 port 80",
		"server 99999 address 10.0.0.1 port 80",
		"exit",
		"log /tmp/x",
		"blacklist",
		"server 0 address 10.0.0.1 port 080",
	}
	for _, b := range bad {
		if err := pen.Parse([]byte(b)); err == nil {
			t.Errorf("Parse(%q) accepted it", b)
		}
	}
}

func TestLoadTemplate(t *testing.T) {
	dir := t.TempDir()
	tpl, err := pen.LoadTemplate(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := svc(srv("10.0.0.1", 80, 1))
	got, _ := pen.Render(pen.Params{Servers: 2, Template: tpl}, s, pen.NewSlots(2))
	want, _ := pen.Render(pen.Params{Servers: 2}, s, pen.NewSlots(2))
	if got == nil || !bytes.Equal(got, want) {
		t.Error("a template dir without pen.cfg.tmpl did not fall back to the embedded template")
	}
	os.WriteFile(filepath.Join(dir, pen.TemplateName), []byte("blacklist 10\n{{range .Slots}}server {{.N}} address {{.Address}} port {{.Port}}\n{{end}}"), 0o644)
	tpl, _ = pen.LoadTemplate(dir)
	got, err = pen.Render(pen.Params{Servers: 2, Template: tpl}, s, pen.NewSlots(2))
	if err != nil || string(got) != "blacklist 10\nserver 0 address 10.0.0.1 port 80\nserver 1 address 0.0.0.0 port 0\n" {
		t.Errorf("custom template: %q %v", got, err)
	}
	// A template producing what pen would silently ignore is refused.
	os.WriteFile(filepath.Join(dir, pen.TemplateName), []byte("{{range .Slots}}sever {{.N}} address {{.Address}}\n{{end}}"), 0o644)
	tpl, _ = pen.LoadTemplate(dir)
	if got, err := pen.Render(pen.Params{Servers: 2, Template: tpl}, s, pen.NewSlots(2)); err == nil {
		t.Errorf("a misspelt template rendered %q", got)
	}
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	return testbin.FreePort(t, network)
}

func namedBackend(t *testing.T, name string) services.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
	t.Cleanup(s.Close)
	return srv("127.0.0.1", s.Listener.Addr().(*net.TCPAddr).Port, 500)
}

func startPen(t *testing.T, udp bool, port int, cfgPath string) *exec.Cmd {
	t.Helper()
	bin := testbin.Require(t, "pen")
	// -r: no client tracking, so one test client reaches every server.
	args := []string{"-f", "-r", "-F", cfgPath}
	if udp {
		args = append(args, "-U")
	}
	args = append(args, fmt.Sprintf("127.0.0.1:%d", port))
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("pen output:\n%s", out.String())
		}
	})
	return cmd
}

func get(port int) string {
	body, err := testbin.Get(port)
	if err != nil {
		return "error: " + err.Error()
	}
	return body
}

// TestLivePenReload runs a real pen on the rendered config with servers a
// and b, then removes a and sends SIGHUP: pen must stop using a, which works
// only because a's slot is written out explicitly as a free one.
func TestLivePenReload(t *testing.T) {
	a, b := namedBackend(t, "a"), namedBackend(t, "b")
	port := freePort(t, "tcp")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "cfg")
	slots := pen.NewSlots(4)
	write := func(s services.Service) {
		cfg, err := pen.Render(pen.Params{Servers: 4}, s, slots)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(svc(a, b))
	cmd := startPen(t, false, port, cfgPath)
	seen := map[string]bool{}
	waitFor(t, func() bool { seen[get(port)] = true; return seen["a"] && seen["b"] }, "pen to serve a and b")

	write(svc(b))
	if !strings.Contains(readFile(t, cfgPath), "server 0 address 0.0.0.0 port 0 weight 0 max 0 hard 0\nserver 1 address 127.0.0.1 ") {
		t.Fatalf("a's slot was not freed in place:\n%s", readFile(t, cfgPath))
	}
	cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond) // pen re-reads on its next loop
	for i := 0; i < 20; i++ {
		if got := get(port); got != "b" {
			t.Fatalf("request %d after reload reached %q; the removed server is still used", i, got)
		}
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLivePenUDP pushes a datagram through pen -U to an IPv4 echo server.
func TestLivePenUDP(t *testing.T) {
	echo, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	}()
	s := services.Service{Name: "dns", Port: freePort(t, "udp"), Protocol: services.UDP, Mode: services.ModeTCP,
		Servers: []services.Server{srv("127.0.0.1", echo.LocalAddr().(*net.UDPAddr).Port, 500)}}
	cfg, err := pen.Render(pen.Params{Servers: 2}, s, pen.NewSlots(2))
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "cfg")
	os.WriteFile(cfgPath, cfg, 0o644)
	startPen(t, true, s.Port, cfgPath)
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", s.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, func() bool {
		c.Write([]byte("hi"))
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		line, _ := bufio.NewReader(c).ReadString('\n')
		return strings.HasPrefix(line, "echo hi")
	}, "a UDP echo through pen")
}

// pen takes IPv6 server addresses unbracketed, as rendered.
func TestLivePenIPv6Server(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		testbin.Missing(t, "no IPv6 loopback: %v", err)
	}
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "v6") }))
	s.Listener.Close()
	s.Listener = ln
	s.Start()
	defer s.Close()
	port := freePort(t, "tcp")
	cfg, err := pen.Render(pen.Params{Servers: 2}, svc(srv("::1", ln.Addr().(*net.TCPAddr).Port, 500)), pen.NewSlots(2))
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "cfg")
	os.WriteFile(cfgPath, cfg, 0o644)
	startPen(t, false, port, cfgPath)
	waitFor(t, func() bool { return get(port) == "v6" }, "pen to reach the IPv6 server")
}

// TestLivePenHTTPOption: a mode http service gets pen's http option, and a
// real pen then adds X-Forwarded-For; back to mode tcp, the rendered "no
// http" turns it off again on a reload (pen keeps what a file does not say).
func TestLivePenHTTPOption(t *testing.T) {
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "xff=%s", r.Header.Get("X-Forwarded-For"))
	}))
	defer b.Close()
	port := freePort(t, "tcp")
	cfgPath := filepath.Join(t.TempDir(), "cfg")
	slots := pen.NewSlots(2)
	write := func(mode services.Mode) {
		s := svc(srv("127.0.0.1", b.Listener.Addr().(*net.TCPAddr).Port, 500))
		s.Mode = mode
		cfg, err := pen.Render(pen.Params{Servers: 2}, s, slots)
		if err != nil {
			t.Fatal(err)
		}
		if err := pen.Parse(cfg); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(services.ModeHTTP)
	if !strings.Contains(readFile(t, cfgPath), "\nhttp\n") {
		t.Fatalf("no http option for a mode http service:\n%s", readFile(t, cfgPath))
	}
	cmd := startPen(t, false, port, cfgPath)
	waitFor(t, func() bool { return get(port) == "xff=127.0.0.1" }, "X-Forwarded-For added by pen")

	write(services.ModeTCP)
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool { return get(port) == "xff=" }, "X-Forwarded-For no longer added after the reload")
}
