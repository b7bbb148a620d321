package testbin

import (
	"os"
	"strconv"
	"strings"
)

// Proc is one process as /proc/<pid>/stat gives it.
type Proc struct {
	PID, PPID int
	Name      string // comm: may hold spaces and parentheses
	State     string // R, S, Z, ...
}

// Procs lists the processes running now (the tests check which proxies an
// agent or entrypoint left behind).
func Procs() []Proc {
	ents, _ := os.ReadDir("/proc")
	var out []Proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		f := strings.Fields(s[closing+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		out = append(out, Proc{PID: pid, PPID: ppid, Name: s[open+1 : closing], State: f[0]})
	}
	return out
}
