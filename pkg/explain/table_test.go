package explain

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	err := WriteTable(&b, []Entry{
		{Source: "registrator", App: "/services/web/h:c:80", Task: "h:c:80", Reason: MalformedKey, Detail: "value \"x\ny\" is not ip:port"},
		{Source: "reload", Service: "web", Port: 10001, Protocol: "tcp", Proxy: "pen", Reason: PenSlotsFull, Detail: "2 servers left out"},
	}, 3)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want header, 2 entries and the omitted line:\n%s", len(lines), b.String())
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "SOURCE APP/KEY TASK SERVICE PORT PROXY REASON DETAIL" {
		t.Errorf("header %q", lines[0])
	}
	// Columns line up: each column starts where its header does.
	col := strings.Index(lines[0], "REASON")
	if lines[1][col:col+len("malformed-key")] != "malformed-key" || lines[2][col:col+len("pen-slots-full")] != "pen-slots-full" {
		t.Errorf("REASON column not aligned:\n%s", b.String())
	}
	if !strings.Contains(lines[1], `value "x\ny" is not ip:port`) {
		t.Errorf("a newline in a detail is not escaped: %q", lines[1])
	}
	if f := strings.Fields(lines[2]); f[1] != "-" || f[4] != "10001/tcp" || f[5] != "pen" {
		t.Errorf("reload line %q", lines[2])
	}
	if !strings.Contains(lines[3], "3 more entries") {
		t.Errorf("omitted line %q", lines[3])
	}

	b.Reset()
	WriteTable(&b, nil, 0)
	if !strings.Contains(b.String(), "nothing left out") {
		t.Errorf("empty table: %q", b.String())
	}
}

func TestExportedBookOnMetrics(t *testing.T) {
	b := NewBook(3, 0)
	b.Set("registrator /a", []Entry{{Source: "registrator", Reason: MalformedKey}, {Source: "registrator", Reason: MalformedKey}})
	b.Set("registrator /b", []Entry{{Source: "registrator", Reason: InvalidName}, {Source: "registrator", Reason: InvalidName}})
	Export(b)
	defer Export(nil)
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			k := mf.GetName()
			for _, l := range m.GetLabel() {
				k += " " + l.GetValue()
			}
			got[k] = m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		// Labels in name order: reason, source.
		"proxymatic_explain_entries malformed-key registrator": 2,
		"proxymatic_explain_entries invalid-name registrator":  1,
		"proxymatic_explain_omitted":                           1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
