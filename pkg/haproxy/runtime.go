package haproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/meltwater/proxymatic/pkg/services"
)

// ErrNeedsReload says a change cannot be applied through the runtime API:
// something besides the servers of existing services changed.
var ErrNeedsReload = errors.New("needs a reload")

// Update is a change between two service lists that touches only the servers
// of services HAProxy already serves. Applied through the admin socket it
// leaves HAProxy running exactly what the new list renders to.
type Update struct {
	backends []backendUpdate
}

type backendUpdate struct {
	name    string       // the listen section
	want    []serverView // every server the backend must end with
	add     []serverView // not in the running config
	change  []serverView // weight or maxconn changed
	remove  []string     // names in the running config only
	servers int          // len(want), for logs
}

// Empty reports whether the update changes nothing.
func (u *Update) Empty() bool {
	for _, b := range u.backends {
		if len(b.add)+len(b.change)+len(b.remove) > 0 {
			return false
		}
	}
	return true
}

// String summarises the update for logs.
func (u *Update) String() string {
	var add, chg, rm int
	for _, b := range u.backends {
		add, chg, rm = add+len(b.add), chg+len(b.change), rm+len(b.remove)
	}
	return fmt.Sprintf("%d added, %d changed, %d removed servers in %d services", add, chg, rm, len(u.backends))
}

// PlanUpdate returns the runtime changes that take HAProxy from a config
// rendered from old to the one rendered from new (both with p), or an error
// wrapping ErrNeedsReload that says why only a reload can. Everything but
// the server lines must render to the same bytes, so a change this package
// does not know about (a new field, a new global setting) falls back to a
// reload rather than being silently skipped. An overriding template may
// render servers any way it likes: it always reloads.
func PlanUpdate(p Params, old, new []services.Service) (*Update, error) {
	if p.Template != nil {
		return nil, fmt.Errorf("%w: an overriding template is in use", ErrNeedsReload)
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	ov, err := newView(p, old)
	if err != nil {
		return nil, err
	}
	nv, err := newView(p, new)
	if err != nil {
		return nil, err
	}
	if len(ov.Services) != len(nv.Services) {
		return nil, fmt.Errorf("%w: %d services before, %d now", ErrNeedsReload, len(ov.Services), len(nv.Services))
	}
	if string(writeDefault(nil, withoutServers(ov))) != string(writeDefault(nil, withoutServers(nv))) {
		return nil, fmt.Errorf("%w: a service or a global setting changed", ErrNeedsReload)
	}
	u := &Update{}
	for i := range nv.Services {
		was, ns := &ov.Services[i], &nv.Services[i]
		// inter and fall are on the server lines, which the comparison
		// above leaves out; a running server's check cannot be retimed.
		if (was.check == nil) != (ns.check == nil) || (was.check != nil && *was.check != *ns.check) {
			return nil, fmt.Errorf("%w: health check settings of %s changed", ErrNeedsReload, ns.Name)
		}
		b := backendUpdate{name: ns.Name, want: ns.Servers, servers: len(ns.Servers)}
		before := make(map[string]*serverView, len(was.Servers))
		for j := range was.Servers {
			before[was.Servers[j].Name()] = &was.Servers[j]
		}
		for _, sv := range ns.Servers {
			name := sv.Name()
			prev, ok := before[name]
			if !ok {
				b.add = append(b.add, sv)
				continue
			}
			delete(before, name)
			if prev.ID != sv.ID {
				// Only an id collision moves an id; HAProxy cannot renumber a server.
				return nil, fmt.Errorf("%w: server %s/%s changes id %d -> %d", ErrNeedsReload, ns.Name, name, prev.ID, sv.ID)
			}
			if prev.Weight() != sv.Weight() || prev.MaxConn() != sv.MaxConn() {
				b.change = append(b.change, sv)
			}
		}
		for j := range was.Servers {
			if name := was.Servers[j].Name(); before[name] != nil {
				b.remove = append(b.remove, name)
			}
		}
		if len(b.add)+len(b.change)+len(b.remove) > 0 {
			u.backends = append(u.backends, b)
		}
	}
	return u, nil
}

func withoutServers(v *view) *view {
	c := *v
	c.Services = make([]serviceView, len(v.Services))
	for i, s := range v.Services {
		s.Servers = nil
		c.Services[i] = s
	}
	return &c
}

// serverArgs are the arguments of the server's line after its name: the
// same keywords writeDefault renders, so `add server` creates exactly what
// the file on disk says.
func (s serverView) serverArgs() string {
	b := s.appendAddress(nil)
	b = append(b, " id "...)
	b = strconv.AppendUint(b, uint64(s.ID), 10)
	b = append(b, " weight "...)
	b = strconv.AppendInt(b, int64(s.Weight()), 10)
	if s.srv.MaxConn != 0 {
		b = append(b, " maxconn "...)
		b = strconv.AppendInt(b, int64(s.srv.MaxConn), 10)
	}
	return string(s.appendCheck(b))
}

// ServerState is one line of `show servers state`.
type ServerState struct {
	Backend, Name string
	ID            uint32
	Addr          netip.Addr
	Port          int
	OpState       int // 0 stopped, 1 starting, 2 running, 3 stopping
	AdminState    int // SRV_ADMF_* bits
	Weight        int // the user weight (set server weight)
}

// Maint reports whether the server is in maintenance (forced, inherited,
// from its config, from resolution or from a hostname problem).
func (s ServerState) Maint() bool { return s.AdminState&(0x01|0x02|0x04|0x20|0x40) != 0 }

// ServerState reads `show servers state <backend>` from the admin socket.
func (m *Master) ServerState(ctx context.Context, backend string) ([]ServerState, error) {
	out, err := queryUnix(ctx, AdminSocket(m.runDir), "show servers state "+backend)
	if err != nil {
		return nil, err
	}
	return parseServersState(out)
}

func parseServersState(out string) ([]ServerState, error) {
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	if !sc.Scan() || strings.TrimSpace(sc.Text()) != "1" {
		return nil, fmt.Errorf("haproxy show servers state: not format 1: %q", clip(out))
	}
	col := map[string]int{}
	var states []ServerState
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			for i, f := range strings.Fields(strings.TrimPrefix(line, "#")) {
				col[f] = i
			}
			continue
		}
		f := strings.Fields(line)
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(f) {
				return f[i]
			}
			return ""
		}
		atoi := func(name string) int { n, _ := strconv.Atoi(get(name)); return n }
		s := ServerState{Backend: get("be_name"), Name: get("srv_name"), Port: atoi("srv_port"),
			OpState: atoi("srv_op_state"), AdminState: atoi("srv_admin_state"), Weight: atoi("srv_uweight")}
		id, err := strconv.ParseUint(get("srv_id"), 10, 32)
		if err != nil || s.Name == "" {
			return nil, fmt.Errorf("haproxy show servers state: bad line %q", clip(line))
		}
		s.ID = uint32(id)
		s.Addr, _ = netip.ParseAddr(get("srv_addr"))
		states = append(states, s)
	}
	return states, sc.Err()
}

// admin sends one command to the admin socket. HAProxy answers the set
// commands with nothing on success and a message otherwise; ok is the
// answer expected instead of nothing.
func (m *Master) admin(ctx context.Context, cmd, ok string) error {
	out, err := queryUnix(ctx, AdminSocket(m.runDir), cmd)
	if err != nil {
		return err
	}
	if got := strings.TrimSpace(out); got != ok {
		return fmt.Errorf("haproxy %q: %s", cmd, clip(got))
	}
	return nil
}

// Apply makes the running worker serve what u describes, without a reload,
// and verifies the result with show servers state. New servers are added
// (and made ready) before old ones leave, so a backend being replaced never
// runs empty. A removed server goes to maintenance at once (no new
// traffic) and is deleted; one that still has connections stays in
// maintenance, draining, and its deletion is retried on the next Apply
// (a reload drops it too). Any error means the worker may be half-way:
// the caller reloads with the config rendered from the new services, which
// puts everything right.
func (m *Master) Apply(ctx context.Context, u *Update) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.draining == nil {
		m.draining = map[string]bool{}
	}
	adding := map[string]bool{}
	for _, b := range u.backends {
		for _, sv := range b.add {
			adding[b.name+"/"+sv.Name()] = true
		}
	}
	// Servers removed earlier that have finished draining.
	for key := range m.draining {
		if !adding[key] && m.deleteServer(ctx, key) {
			delete(m.draining, key)
		}
	}
	for _, b := range u.backends {
		for _, sv := range b.add {
			key := b.name + "/" + sv.Name()
			if m.draining[key] {
				// Still there in maintenance: bring it back as it is now wanted.
				if err := m.setServer(ctx, key, sv); err != nil {
					return err
				}
				delete(m.draining, key)
			} else if err := m.admin(ctx, "add server "+key+" "+sv.serverArgs(), "New server registered."); err != nil {
				return err
			}
			// A dynamic server starts in maintenance with its check off.
			if sv.Check() {
				if err := m.admin(ctx, "enable health "+key, ""); err != nil {
					return err
				}
			}
			if err := m.admin(ctx, "set server "+key+" state ready", ""); err != nil {
				return err
			}
		}
		for _, sv := range b.change {
			if err := m.setServer(ctx, b.name+"/"+sv.Name(), sv); err != nil {
				return err
			}
		}
		for _, name := range b.remove {
			key := b.name + "/" + name
			if err := m.admin(ctx, "set server "+key+" state maint", ""); err != nil {
				return err
			}
			if !m.deleteServer(ctx, key) {
				m.draining[key] = true
			}
		}
	}
	return m.verify(ctx, u)
}

func (m *Master) setServer(ctx context.Context, key string, sv serverView) error {
	if err := m.admin(ctx, "set server "+key+" weight "+strconv.Itoa(sv.Weight()), ""); err != nil {
		return err
	}
	return m.admin(ctx, "set maxconn server "+key+" "+strconv.Itoa(sv.MaxConn()), "")
}

// deleteServer deletes a server in maintenance; false while HAProxy refuses
// (it still has connections). A server that no longer exists counts as
// deleted (the worker was restarted or reloaded since).
func (m *Master) deleteServer(ctx context.Context, key string) bool {
	out, err := queryUnix(ctx, AdminSocket(m.runDir), "del server "+key)
	if err != nil {
		return false
	}
	out = strings.TrimSpace(out)
	if out == "Server deleted." || strings.Contains(out, "No such server") || strings.Contains(out, "No such backend") {
		return true
	}
	m.log.Debug("server left draining in maintenance", "server", key, "haproxy", clip(out))
	return false
}

// verify reads back every backend the update touched: each wanted server
// with its id, address, port and weight, out of maintenance; each removed
// one gone or in maintenance.
func (m *Master) verify(ctx context.Context, u *Update) error {
	for _, b := range u.backends {
		states, err := m.ServerState(ctx, b.name)
		if err != nil {
			return fmt.Errorf("verifying %s: %w", b.name, err)
		}
		byName := make(map[string]ServerState, len(states))
		for _, s := range states {
			if s.Backend == b.name {
				byName[s.Name] = s
			}
		}
		for _, sv := range b.want {
			s, ok := byName[sv.Name()]
			switch {
			case !ok:
				return fmt.Errorf("verifying %s: server %s missing", b.name, sv.Name())
			case s.ID != sv.ID || s.Addr != sv.srv.IP.Unmap() && s.Addr != sv.srv.IP || s.Port != sv.srv.Port:
				return fmt.Errorf("verifying %s: server %s is id %d %s:%d, want id %d %s", b.name, sv.Name(), s.ID, s.Addr, s.Port, sv.ID, sv.Address())
			case s.Weight != sv.Weight():
				return fmt.Errorf("verifying %s: server %s has weight %d, want %d", b.name, sv.Name(), s.Weight, sv.Weight())
			case s.Maint():
				return fmt.Errorf("verifying %s: server %s is in maintenance (admin state %#x)", b.name, sv.Name(), s.AdminState)
			}
			delete(byName, sv.Name())
		}
		for name, s := range byName {
			if !s.Maint() {
				return fmt.Errorf("verifying %s: server %s should be gone but is serving", b.name, name)
			}
		}
	}
	return nil
}
