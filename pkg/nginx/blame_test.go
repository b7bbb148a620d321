package nginx_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/nginx"
	"github.com/meltwater/proxymatic/pkg/services"
)

// Blame, on the real `nginx -t` message, names the virtual host whose
// upstream or server block (or a location inside it) holds the error.
// nginx stops at its first error, so each check names one.
func TestBlameNamesTheRefusedVHost(t *testing.T) {
	bin := testbin.Require(t, "nginx")
	b, err := os.ReadFile(filepath.Join("templates", nginx.TemplateName))
	if err != nil {
		t.Fatal(err)
	}
	const upstream, location = "        least_conn;\n", "        location / {\n"
	if !strings.Contains(string(b), upstream) || !strings.Contains(string(b), location) {
		t.Fatal("template markers moved")
	}
	tpl := strings.Replace(string(b), upstream, upstream+`{{if eq .Host "up.x"}}        bogus_in_upstream;`+"\n{{end}}", 1)
	// The last location is the virtual hosts' (the first is the default server's).
	i := strings.LastIndex(tpl, location) + len(location)
	tpl = tpl[:i] + `{{if eq .Host "loc.x"}}            bogus_in_location on;` + "\n{{end}}" + tpl[i:]
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, nginx.TemplateName), []byte(tpl), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl, err := nginx.LoadTemplate(dir)
	if err != nil {
		t.Fatal(err)
	}
	vh := func(host string, port int) nginx.VHost {
		return nginx.VHost{Host: host, Service: services.Key{Port: port, Protocol: services.TCP},
			Servers: []services.Server{srv("10.0.0.1", port, 500)}}
	}
	runDir := t.TempDir()
	if err := nginx.MakeDirs(runDir); err != nil {
		t.Fatal(err)
	}
	check := func(vhosts []nginx.VHost) (map[services.Key]string, bool, string) {
		t.Helper()
		cfg, err := nginx.Render(nginx.Params{RunDir: runDir, Port: testbin.FreePort(t, "tcp"), MaxConnections: 10, Template: tmpl}, vhosts)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(runDir, ".nginx.conf.new")
		if err := os.WriteFile(path, cfg, 0o644); err != nil {
			t.Fatal(err)
		}
		err = nginx.Check(context.Background(), bin, runDir, path)
		if err == nil {
			return nil, true, ""
		}
		blamed, all := nginx.Blame(cfg, path, err.Error(), vhosts)
		return blamed, all, err.Error()
	}
	good, up, loc := vh("good.x", 9000), vh("up.x", 9001), vh("loc.x", 9002)
	blamed, all, msg := check([]nginx.VHost{good, loc, up})
	if !all || len(blamed) != 1 || !strings.Contains(blamed[loc.Service], `unknown directive "bogus_in_location"`) {
		t.Fatalf("round 1: blamed %q, all %v; message:\n%s", blamed, all, msg)
	}
	blamed, all, msg = check([]nginx.VHost{good, up})
	if !all || len(blamed) != 1 || !strings.Contains(blamed[up.Service], `unknown directive "bogus_in_upstream"`) {
		t.Fatalf("round 2: blamed %q, all %v; message:\n%s", blamed, all, msg)
	}
	if _, _, msg = check([]nginx.VHost{good}); msg != "" {
		t.Fatalf("the good virtual host alone is refused: %s", msg)
	}
}

// Lines outside every virtual host's blocks, and messages without a place,
// blame nobody; quotes, comments and braces inside them do not confuse the
// block reader.
func TestBlameBlocks(t *testing.T) {
	cfg := `http {
    # a comment with { and }
    map $x $y { default "a;}{"; }
    upstream web.x {
        server 10.0.0.1:80;
    }
    server {
        listen 80;
        server_name other.x web.x;
        location / {
            return 200 "}";
        }
    }
    server {
        server_name _;
        bad;
    }
}
`
	vhosts := []nginx.VHost{{Host: "web.x", Service: services.Key{Port: 8080, Protocol: services.TCP}}}
	for _, c := range []struct {
		line int
		want bool
	}{{1, false}, {3, false}, {4, true}, {5, true}, {6, true}, {7, true}, {9, true}, {11, true}, {13, true}, {14, false}, {16, false}, {18, false}} {
		msg := "nginx: [emerg] 1#1: something in /r/nginx.conf:" + strconv.Itoa(c.line)
		blamed, all := nginx.Blame([]byte(cfg), "/r/nginx.conf", msg, vhosts)
		if (len(blamed) == 1) != c.want || all != c.want {
			t.Errorf("line %d: blamed %q all %v, want %v", c.line, blamed, all, c.want)
		}
	}
	if blamed, all := nginx.Blame([]byte(cfg), "/r/nginx.conf", "nginx: [emerg] 1#1: could not build server_names_hash", vhosts); all || len(blamed) != 0 {
		t.Errorf("a message without a place blamed %q", blamed)
	}
}
