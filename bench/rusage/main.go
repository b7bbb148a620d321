// Command rusage runs a command and prints its wall time, CPU time and peak
// RSS as one line of JSON on stderr's last line:
//
//	rusage proxymatic-sync --once --dry-run ...
//
// The bench harness runs its children through it because a child forked
// straight from the (large) test process reports the parent's peak RSS:
// Linux records the pre-exec address space's high-water mark in ru_maxrss.
// Forked from this small process instead, the error is this process's own
// few megabytes.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: rusage command [args...]")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	out := struct {
		WallNS   int64 `json:"wall_ns"`
		CPUNS    int64 `json:"cpu_ns"`
		MaxRSSKB int64 `json:"max_rss_kb"`
		Exit     int   `json:"exit"`
	}{WallNS: wall.Nanoseconds(), Exit: -1}
	if cmd.ProcessState != nil {
		out.Exit = cmd.ProcessState.ExitCode()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			out.CPUNS = ru.Utime.Nano() + ru.Stime.Nano()
			out.MaxRSSKB = ru.Maxrss
		}
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "rusage:", err)
	}
	line, _ := json.Marshal(out)
	fmt.Fprintf(os.Stderr, "\nrusage: %s\n", line)
	os.Exit(max(out.Exit, 0))
}
