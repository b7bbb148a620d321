package pen

import (
	"strconv"

	"github.com/meltwater/proxymatic/pkg/services"
)

// writeDefault appends exactly what the embedded template renders for v.
// 10,000 services with 32 slots each are 320,000 lines; text/template's
// reflection is far too slow for that. The equivalence test (fast_test.go)
// keeps the two identical, so the template stays the documented format and
// the override point.
func writeDefault(b []byte, v *view) []byte {
	return writeSlots(b, v.Name, v.Port, v.Protocol, v.HTTP, func(i int) *services.Server { return v.Slots[i].srv }, len(v.Slots), nil)
}

// writeSlots is writeDefault without the view, which would cost an
// allocation per slot.
// free, when long enough, holds each slot's free line ready made (most
// slots are free, and formatting them is most of the work).
func writeSlots(b []byte, name string, port int, proto string, http bool, slot func(int) *services.Server, n int, free []string) []byte {
	b = append(b, "# pen "...)
	b = strconv.AppendInt(b, int64(port), 10)
	b = append(b, '/')
	b = append(b, proto...)
	b = append(b, " ("...)
	b = append(b, name...)
	b = append(b, "), rendered by proxymatic-reload. Every slot is listed: pen's reload only adds and changes servers.\n"...)
	if http {
		b = append(b, "http\n"...)
	} else {
		b = append(b, "no http\n"...)
	}
	for i := 0; i < n; i++ {
		srv := slot(i)
		if srv == nil && i < len(free) {
			b = append(b, free[i]...)
			continue
		}
		b = append(b, "server "...)
		b = strconv.AppendInt(b, int64(i), 10)
		if srv == nil {
			b = append(b, " address 0.0.0.0 port 0 weight 0 max 0 hard 0\n"...)
			continue
		}
		b = append(b, " address "...)
		b = srv.IP.AppendTo(b)
		b = append(b, " port "...)
		b = strconv.AppendInt(b, int64(srv.Port), 10)
		b = append(b, " weight "...)
		b = strconv.AppendInt(b, int64(srv.Weight), 10)
		b = append(b, " max "...)
		b = strconv.AppendInt(b, int64(srv.MaxConn), 10)
		b = append(b, " hard "...)
		b = strconv.AppendInt(b, int64(srv.MaxConn), 10)
		b = append(b, '\n')
	}
	return b
}

// freeLines renders the free line of each of n slots, as writeSlots would.
func freeLines(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "server " + strconv.Itoa(i) + " address 0.0.0.0 port 0 weight 0 max 0 hard 0\n"
	}
	return out
}
