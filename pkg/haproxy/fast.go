package haproxy

import "strconv"

// writeDefault appends exactly what the embedded template renders for v.
// text/template's reflection costs ~1 µs per field, too slow for 10,000
// services; the equivalence test (fast_test.go) keeps the two identical, so
// the template stays the documented format and the override point.
func writeDefault(b []byte, v *view) []byte {
	b = writeHeader(b, v)
	for i := range v.Services {
		b = writeListen(b, &v.Services[i], v.MaxConn)
	}
	return b
}

// writeHeader writes everything before the first listen section.
func writeHeader(b []byte, v *view) []byte {
	b = append(b, `# Rendered by proxymatic-reload from services.yaml. Do not edit: the next
# change to services.yaml overwrites it.
global
    # Run with -W (master-worker) in the foreground: no "daemon" here.
    maxconn `...)
	b = strconv.AppendInt(b, int64(v.GlobalMaxConn), 10)
	b = append(b, "\n    spread-checks 5"...)
	if v.HardStopAfter != "" {
		b = append(b, `
    # Old workers finishing long connections after a reload are stopped
    # after this, so frequent reloads cannot pile them up.
    hard-stop-after `...)
		b = append(b, v.HardStopAfter...)
	}
	b = append(b, `
    stats socket `...)
	b = append(b, v.AdminSocket...)
	b = append(b, ` mode 600 level admin expose-fd listeners
    stats timeout 30s
    server-state-file `...)
	b = append(b, v.StateFile...)
	b = append(b, `
    # Server state changes (notice) reach the agent's log; traffic logs (info) do not.
    log stderr format raw daemon notice`...)
	if v.User != "" {
		b = append(b, "\n    user "...)
		b = append(b, v.User...)
	}
	if v.Group != "" {
		b = append(b, "\n    group "...)
		b = append(b, v.Group...)
	}
	b = append(b, `

defaults
    mode tcp
    log global
    option dontlognull
    timeout connect 3s
    timeout client 300s
    timeout server 300s
    timeout tunnel 3600s
    timeout check 5s
    timeout queue 30s
    timeout http-request 15s
    timeout http-keep-alive 1s
    retries 3
    option redispatch
    load-server-state-from-file global

# The stats page and a liveness URI, reachable only through the unix socket:
# the reload agent serves it on --status-endpoint under /haproxy.
frontend proxymatic_stats
    mode http
    bind unix@`...)
	b = append(b, v.StatsSocket...)
	b = append(b, ` mode 600
    stats enable
    stats uri /haproxy
    stats refresh 10s
    monitor-uri /status
`...)
	return b
}

// writeListen writes one listen section.
func writeListen(b []byte, s *serviceView, maxConn int) []byte {
	b = append(b, "\nlisten "...)
	b = append(b, s.Name...)
	b = append(b, "\n    bind :"...)
	b = strconv.AppendInt(b, int64(s.Port), 10)
	b = append(b, "\n    mode "...)
	b = append(b, s.Mode...)
	b = append(b, "\n    balance leastconn\n    maxconn "...)
	b = strconv.AppendInt(b, int64(maxConn), 10)
	if s.HTTP {
		b = append(b, "\n    option forwardfor if-none"...)
	}
	if s.CheckPath != "" {
		b = append(b, "\n    option httpchk\n    http-check send meth GET uri "...)
		b = append(b, s.CheckPath...)
		b = append(b, " ver HTTP/1.1 hdr Host "...)
		b = append(b, s.CheckHost...)
	}
	if s.CheckTimeout != "" {
		b = append(b, "\n    timeout check "...)
		b = append(b, s.CheckTimeout...)
	}
	if s.TimeoutClient != "" {
		b = append(b, "\n    timeout client "...)
		b = append(b, s.TimeoutClient...)
	}
	if s.TimeoutServer != "" {
		b = append(b, "\n    timeout server "...)
		b = append(b, s.TimeoutServer...)
	}
	for j := range s.Servers {
		sv := &s.Servers[j]
		b = append(b, "\n    server "...)
		b = sv.appendName(b)
		b = append(b, ' ')
		b = sv.appendAddress(b)
		b = append(b, " id "...)
		b = strconv.AppendUint(b, uint64(sv.ID), 10)
		b = append(b, " weight "...)
		b = strconv.AppendInt(b, int64(Weight(sv.srv.Weight)), 10)
		if sv.srv.MaxConn != 0 {
			b = append(b, " maxconn "...)
			b = strconv.AppendInt(b, int64(sv.srv.MaxConn), 10)
		}
		b = sv.appendCheck(b)
	}
	return append(b, '\n')
}
