package nginx

import (
	"bytes"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"text/template"

	"github.com/meltwater/proxymatic/pkg/rundir"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/templates"
)

// view is what the template sees: flat, pre-formatted and already validated.
type view struct {
	User, Group         string
	PidFile             string
	ClientBodyTemp      string
	ProxyTemp           string
	FastCGITemp         string
	UWSGITemp           string
	SCGITemp            string
	WorkerConnections   int
	RlimitNofile        int
	NamesHashMaxSize    int
	NamesHashBucketSize int
	Port                int
	ProxyProtocol       bool
	VHosts              []vhostView
}

type vhostView struct {
	Host     string
	Upstream string
	Servers  []serverView
}

type serverView struct {
	srv services.Server
}

// Address is ip:port, IPv6 bracketed.
func (s serverView) Address() string { return s.srv.Address() }

// Weight is 1..256 (see Weight); meaningless when Down.
func (s serverView) Weight() int { return Weight(s.srv.Weight) }

// Down is a drained server (weight 0): nginx has no weight 0.
func (s serverView) Down() bool { return s.srv.Weight == 0 }

// MaxConns is the server's connection limit; 0 is unlimited.
func (s serverView) MaxConns() int { return s.srv.MaxConn }

func loadTemplate(dir string) (*template.Template, error) { return templates.Load(dir, TemplateName) }

// defaultTemplate is the embedded template; the tests hold writeDefault to it.
var defaultTemplate = templates.MustEmbedded(embedded, TemplateName)

func render(p Params, vhosts []VHost) ([]byte, error) {
	v, err := newView(p, vhosts)
	if err != nil {
		return nil, err
	}
	size := 3072 + 256*len(vhosts)
	for i := range vhosts {
		size += 64 * len(vhosts[i].Servers)
	}
	if p.Template == nil {
		return writeDefault(make([]byte, 0, size), v), nil
	}
	var buf bytes.Buffer
	buf.Grow(size)
	if err := p.Template.Execute(&buf, v); err != nil {
		return nil, fmt.Errorf("nginx template: %w", err)
	}
	return buf.Bytes(), nil
}

func makeDirs(runDir string) error {
	if !safePath(runDir) {
		return fmt.Errorf("nginx: run dir %q: want an absolute, clean path of [A-Za-z0-9._/-]", runDir)
	}
	// Only the parent: nginx creates the temp dirs itself and, as root,
	// hands them to its worker user.
	// A real directory, never a link: nginx (as root) creates the temp
	// dirs in it and chowns them to its worker user.
	dir := filepath.Dir(TempDirs(runDir)[0])
	if err := os.MkdirAll(filepath.Dir(dir), rundir.DirMode); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	if err := rundir.Mkdir(dir, rundir.DirMode, -1, -1); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	return nil
}

// safePath admits only paths that need no quoting in any proxy's config.
func safePath(p string) bool { return services.SafeFilePath(p) }

// validUser admits POSIX portable user and group names.
func validUser(s string) bool {
	if s == "" || len(s) > 32 || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// maxHostLen is DNS's limit: a longer Host header can never arrive.
const maxHostLen = 253

func newView(p Params, vhosts []VHost) (*view, error) {
	if !safePath(p.RunDir) {
		return nil, fmt.Errorf("nginx: run dir %q: want an absolute, clean path of [A-Za-z0-9._/-]", p.RunDir)
	}
	if p.Port < 1 || p.Port > 65535 {
		return nil, fmt.Errorf("nginx: vhost port %d is out of range 1..65535", p.Port)
	}
	if p.MaxConnections < 1 {
		return nil, fmt.Errorf("nginx: max connections %d: want at least 1", p.MaxConnections)
	}
	if p.User != "" && !validUser(p.User) {
		return nil, fmt.Errorf("nginx: user %q is not a valid user name", p.User)
	}
	if p.Group != "" && (p.User == "" || !validUser(p.Group)) {
		return nil, fmt.Errorf("nginx: group %q: want a valid group name, with a user", p.Group)
	}
	temps := TempDirs(p.RunDir)
	// A proxied request holds two connections: the client's and the upstream's.
	wc := 2 * p.MaxConnections
	rlimit := 2*wc + 64
	if p.FDLimit > 0 && rlimit > p.FDLimit {
		rlimit = p.FDLimit
		wc = max(1, min(wc, p.FDLimit-64))
	}
	v := &view{
		User: p.User, Group: p.Group,
		PidFile:        PidFile(p.RunDir),
		ClientBodyTemp: temps[0], ProxyTemp: temps[1], FastCGITemp: temps[2], UWSGITemp: temps[3], SCGITemp: temps[4],
		WorkerConnections: wc,
		RlimitNofile:      rlimit,
		Port:              p.Port,
		ProxyProtocol:     p.ProxyProtocol,
		VHosts:            make([]vhostView, 0, len(vhosts)),
	}
	hosts := make(map[string]bool, len(vhosts))
	longest := len("_")
	for i := range vhosts {
		vh := &vhosts[i]
		if !services.ValidName(vh.Host) || len(vh.Host) > maxHostLen {
			return nil, fmt.Errorf("nginx: virtual host %q is not a valid host name", clip(vh.Host))
		}
		if hosts[vh.Host] {
			return nil, fmt.Errorf("nginx: virtual host %s is listed twice", vh.Host)
		}
		hosts[vh.Host] = true
		longest = max(longest, len(vh.Host))
		vv := vhostView{Host: vh.Host, Upstream: vh.Host, Servers: make([]serverView, 0, len(vh.Servers))}
		// The services package's own server rules, applied again to a
		// value that may never have been through Parse.
		check := services.Service{Name: "vhost", Port: 1, Protocol: services.TCP, Mode: services.ModeTCP, Servers: vh.Servers}
		if err := check.Validate(); err != nil {
			return nil, fmt.Errorf("nginx: virtual host %s: %w", vh.Host, err)
		}
		for _, srv := range vh.Servers {
			vv.Servers = append(vv.Servers, serverView{srv})
		}
		v.VHosts = append(v.VHosts, vv)
	}
	v.NamesHashBucketSize, v.NamesHashMaxSize = namesHash(len(vhosts), longest)
	return v, nil
}

// namesHash sizes server_names_hash so that nginx can build it for any
// number of virtual hosts: a bucket must hold the longest name (plus nginx's
// per-entry overhead), and the table may grow to well past the name count.
func namesHash(n, longest int) (bucket, maxSize int) {
	need := longest + 2 + 2*8 // name, length, pointer, alignment slack
	bucket = 64
	if need > bucket {
		bucket = 1 << bits.Len(uint(need-1))
	}
	return bucket, max(512, 4*n)
}

// Weight scales a services.yaml weight (0..1000) to 0..256 like HAProxy's,
// so both proxies balance in the same proportions. A positive weight never
// becomes 0; 0 is rendered as "down".
func Weight(w int) int {
	nw := w * 256 / services.MaxWeight
	if nw == 0 && w > 0 {
		nw = 1
	}
	return nw
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
