package render

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/meltwater/proxymatic/pkg/atomicfile"
	"github.com/meltwater/proxymatic/pkg/haproxy"
	"github.com/meltwater/proxymatic/pkg/nginx"
	"github.com/meltwater/proxymatic/pkg/pen"
	"github.com/meltwater/proxymatic/pkg/services"
)

// RejectedError is DryRun's error when services.yaml holds services that
// were refused: every one of them, with every reason.
type RejectedError struct {
	Rejected []services.Rejected
}

func (e *RejectedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d service(s) rejected; nothing from them was rendered:", len(e.Rejected))
	for _, r := range e.Rejected {
		for _, p := range r.Problems {
			b.WriteString("\n  ")
			b.WriteString(p.Error())
		}
	}
	return b.String()
}

// CheckError is DryRun's error when a proxy (or our pen parser) refuses a
// rendered config; it carries the proxy's own message.
type CheckError struct {
	Proxy string
	Path  string
	Err   error
}

func (e *CheckError) Error() string { return fmt.Sprintf("%s rejects %s: %v", e.Proxy, e.Path, e.Err) }
func (e *CheckError) Unwrap() error { return e.Err }

// RenderedMode is the mode of every file --dry-run writes into
// --output-dir: the configs name backends and sockets, nothing the world
// needs to read.
const RenderedMode = 0o640

// file names inside the output directory.
const (
	haproxyFile = "haproxy.cfg"
	nginxFile   = "nginx.conf"
	penDir      = "pen"
)

func dryRun(ctx context.Context, o Options, servicesPath, outputDir string, validate bool, w io.Writer) error {
	out, err := filepath.Abs(outputDir)
	if err != nil || outputDir == "" {
		return fmt.Errorf("output dir %q: %v", outputDir, err)
	}
	// The configs are rendered as if the output dir were the run dir, so
	// the real proxies can check them (nginx -t creates its temp dirs)
	// without touching, or needing, the production run dir.
	o.RunDir = out
	if o.StatusSocket != "" {
		o.StatusSocket = haproxy.StatsSocket(out)
	}
	if err := o.Validate(); err != nil {
		return fmt.Errorf("output dir %s: %w", out, err)
	}
	var bins struct{ haproxy, nginx string }
	if validate {
		// Found before anything is written: a CI image without the proxies
		// fails at once and says so.
		if o.HAProxy {
			if bins.haproxy, err = lookPath("haproxy"); err != nil {
				return err
			}
		}
		if o.VHostDomain != "" {
			if bins.nginx, err = lookPath("nginx"); err != nil {
				return err
			}
		}
	}

	f, err := os.OpenFile(servicesPath, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("services file: %w", err)
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("services file %s: not a regular file", servicesPath)
	}
	decoded, err := services.ReadFile(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("services file %s: %w", servicesPath, err)
	}
	tpl, err := LoadTemplates(o.TemplateDir)
	if err != nil {
		return err
	}
	plan := NewPlan(o, decoded.File.Services)
	// A fresh slot table: a dry run shows the layout a first start gets.
	files, err := Render(o, tpl, plan, pen.NewSlots(o.PenServers))
	if err != nil {
		return err
	}
	written, err := writeFiles(out, files)
	if err != nil {
		return err
	}

	var checkErrs []error
	// The services a refusing proxy's message names, as the live agent
	// would leave them out (isolate.go): CI sees which ones to fix.
	var refused []Refusal
	blame := func(proxy, p string, data []byte, err error) {
		r, _ := files.Blame(proxy, data, p, err.Error())
		refused = append(refused, r...)
	}
	checked := map[string]string{}
	if validate {
		if files.HAProxy != nil {
			p := filepath.Join(out, haproxyFile)
			if err := haproxy.Check(ctx, bins.haproxy, p); err != nil {
				checkErrs = append(checkErrs, &CheckError{"haproxy", p, err})
				blame("haproxy", p, files.HAProxy, err)
			}
			checked["haproxy"] = " (haproxy -c: " + okOrFailed(len(checkErrs) == 0) + ")"
		}
		if files.Nginx != nil {
			n := len(checkErrs)
			p := filepath.Join(out, nginxFile)
			if err := nginx.MakeDirs(out); err != nil {
				checkErrs = append(checkErrs, &CheckError{"nginx", p, err})
			} else if err := nginx.Check(ctx, bins.nginx, out, p); err != nil {
				checkErrs = append(checkErrs, &CheckError{"nginx", p, err})
				blame("nginx", p, files.Nginx, err)
			}
			checked["nginx"] = " (nginx -t: " + okOrFailed(len(checkErrs) == n) + ")"
		}
	}
	// pen has no check mode: our parser reads back what was written, so
	// a file changed on disk or by a template cannot slip through. A pen
	// config that did not render (an overriding template) is not written.
	n := len(checkErrs)
	for _, r := range files.PenRefused {
		checkErrs = append(checkErrs, &CheckError{"pen parser", filepath.Join(out, penDir, pen.ConfigName(r.Service)), errors.New(r.Message)})
		refused = append(refused, r)
	}
	for _, k := range sortedKeys(files.Pen) {
		p := filepath.Join(out, penDir, pen.ConfigName(k))
		data, err := os.ReadFile(p)
		if err == nil {
			err = pen.Parse(data)
		}
		if err != nil {
			checkErrs = append(checkErrs, &CheckError{"pen parser", p, err})
		}
	}
	checked["pen"] = " (parsed: " + okOrFailed(len(checkErrs) == n) + ")"

	summary(w, servicesPath, out, o, decoded, plan, files, written, checked, refused)

	var errs []error
	if len(decoded.Rejected) > 0 {
		errs = append(errs, &RejectedError{Rejected: decoded.Rejected})
	}
	errs = append(errs, checkErrs...)
	return errors.Join(errs...)
}

func okOrFailed(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAILED"
}

// lookPath finds a proxy binary on PATH or where Debian installs it.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed (not on PATH nor in /usr/sbin); install it or pass --validate=false", name)
}

// writeFiles writes every rendered file under out and removes the files a
// previous run left for proxies or services that are gone, so the directory
// holds exactly this run's configs. It returns the relative paths written.
func writeFiles(out string, files *Files) ([]string, error) {
	var written []string
	put := func(rel string, data []byte) error {
		if _, err := atomicfile.New(filepath.Join(out, rel), RenderedMode).Write(data); err != nil {
			return err
		}
		written = append(written, rel)
		return nil
	}
	drop := func(rel string) error {
		if err := os.Remove(filepath.Join(out, rel)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	for _, f := range []struct {
		rel  string
		data []byte
	}{{haproxyFile, files.HAProxy}, {nginxFile, files.Nginx}} {
		var err error
		if f.data != nil {
			err = put(f.rel, f.data)
		} else {
			err = drop(f.rel)
		}
		if err != nil {
			return nil, err
		}
	}
	want := map[string]bool{}
	for _, k := range sortedKeys(files.Pen) {
		rel := filepath.Join(penDir, pen.ConfigName(k))
		want[rel] = true
		if err := put(rel, files.Pen[k]); err != nil {
			return nil, err
		}
	}
	old, _ := filepath.Glob(filepath.Join(out, penDir, "*.cfg"))
	for _, p := range old {
		rel := filepath.Join(penDir, filepath.Base(p))
		if !want[rel] {
			if err := drop(rel); err != nil {
				return nil, err
			}
		}
	}
	return written, nil
}

func sortedKeys[V any](m map[services.Key]V) []services.Key {
	keys := make([]services.Key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, services.Key.Compare)
	return keys
}

func countServers(svcs []services.Service) int {
	n := 0
	for i := range svcs {
		n += len(svcs[i].Servers)
	}
	return n
}

// summary prints what a CI log needs: how many services each proxy got,
// what was rejected or skipped and why, and where the files are.
func summary(w io.Writer, servicesPath, out string, o Options, d *services.Decoded, p Plan,
	files *Files, written []string, checked map[string]string, refused []Refusal) {
	fmt.Fprintf(w, "services: %d valid, %d rejected, from %s\n", len(d.File.Services), len(d.Rejected), servicesPath)
	if o.HAProxy {
		fmt.Fprintf(w, "haproxy:  %d services, %d servers -> %s%s\n", len(p.HAProxy), countServers(p.HAProxy),
			filepath.Join(out, haproxyFile), checked["haproxy"])
	} else {
		fmt.Fprintf(w, "haproxy:  off (pen serves TCP; --haproxy to change)\n")
	}
	if o.VHostDomain != "" {
		servers := 0
		for _, v := range p.VHosts {
			servers += len(v.Servers)
		}
		fmt.Fprintf(w, "nginx:    %d virtual hosts *.%s on port %d, %d servers -> %s%s\n", len(p.VHosts), o.VHostDomain,
			o.VHostPort, servers, filepath.Join(out, nginxFile), checked["nginx"])
	} else {
		fmt.Fprintf(w, "nginx:    off (--vhost-domain to enable)\n")
	}
	udp := 0
	for _, s := range p.Pen {
		if s.Protocol == services.UDP {
			udp++
		}
	}
	fmt.Fprintf(w, "pen:      %d services (%d tcp, %d udp), %d servers -> %s%s\n", len(p.Pen), len(p.Pen)-udp, udp,
		countServers(p.Pen), filepath.Join(out, penDir)+string(filepath.Separator), checked["pen"])
	for _, k := range sortedKeys(files.PenDropped) {
		fmt.Fprintf(w, "  pen %s: %d servers left out: more than --pen-servers=%d\n", k, files.PenDropped[k], o.PenServers)
	}
	for _, s := range p.Skipped {
		fmt.Fprintf(w, "skipped:  %s\n", s)
	}
	for _, warn := range d.Warnings {
		fmt.Fprintf(w, "warning:  %s\n", warn)
	}
	for _, r := range d.Rejected {
		for _, pr := range r.Problems {
			fmt.Fprintf(w, "rejected: %s\n", pr.Error())
		}
	}
	for _, r := range refused {
		fmt.Fprintf(w, "refused:  %s\n", strings.ReplaceAll(r.String(), "\n", "\n          "))
	}
	fmt.Fprintf(w, "wrote %d files\n", len(written))
}
