package pen

import "strconv"

// writeDefault appends exactly what the embedded template renders for v.
// 10,000 services with 32 slots each are 320,000 lines; text/template's
// reflection is far too slow for that. The equivalence test (fast_test.go)
// keeps the two identical, so the template stays the documented format and
// the override point.
func writeDefault(b []byte, v *view) []byte {
	b = append(b, "# pen "...)
	b = strconv.AppendInt(b, int64(v.Port), 10)
	b = append(b, '/')
	b = append(b, v.Protocol...)
	b = append(b, " ("...)
	b = append(b, v.Name...)
	b = append(b, "), rendered by proxymatic-reload. Every slot is listed: pen's reload only adds and changes servers.\n"...)
	for i := range v.Slots {
		s := &v.Slots[i]
		b = append(b, "server "...)
		b = strconv.AppendInt(b, int64(s.N), 10)
		if s.Free {
			b = append(b, " address 0.0.0.0 port 0 weight 0 max 0 hard 0\n"...)
			continue
		}
		b = append(b, " address "...)
		b = s.srv.IP.AppendTo(b)
		b = append(b, " port "...)
		b = strconv.AppendInt(b, int64(s.srv.Port), 10)
		b = append(b, " weight "...)
		b = strconv.AppendInt(b, int64(s.srv.Weight), 10)
		b = append(b, " max "...)
		b = strconv.AppendInt(b, int64(s.srv.MaxConn), 10)
		b = append(b, " hard "...)
		b = strconv.AppendInt(b, int64(s.srv.MaxConn), 10)
		b = append(b, '\n')
	}
	return b
}
