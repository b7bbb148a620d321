package explain

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteTable writes entries as an aligned text table, one line each, for a
// terminal or a CI log (proxymatic-sync --once --dry-run --explain). Empty
// fields show as "-"; control characters from an app id or a key are
// escaped so that a line stays one line.
func WriteTable(w io.Writer, entries []Entry, omitted int) error {
	if len(entries) == 0 && omitted == 0 {
		_, err := fmt.Fprintln(w, "explain: nothing left out: every app, task and port read was served")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tAPP/KEY\tTASK\tSERVICE\tPORT\tPROXY\tREASON\tDETAIL")
	for _, e := range entries {
		port := ""
		if e.Port != 0 {
			port = strconv.Itoa(e.Port)
			if e.Protocol != "" {
				port += "/" + e.Protocol
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(e.Source), cell(e.App), cell(e.Task), cell(e.Service),
			cell(port), cell(e.Proxy), cell(string(e.Reason)), cell(e.Detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if omitted > 0 {
		_, err := fmt.Fprintf(w, "explain: %d more entries left out by the bounds of the book\n", omitted)
		return err
	}
	return nil
}

// cell is one table cell: "-" when empty, one line without tabs.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if !isControl(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r) // '\n', '\x00'
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }
