package registrator

import (
	"context"
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/resolve"
)

func TestStateExplainsWhatItLeavesOut(t *testing.T) {
	book := explain.NewBook(0, 0)
	st := newState("/services", quiet(), resolve.New(resolve.Options{Resolver: testDNS, Logger: quiet()}))
	st.why = newExplainer(book)
	st.replace(map[string]string{
		"/services/web/h1:web_1:80":        "10.0.0.1:31000",
		"/services/zeta/h1:z:80":           "node-9:1",        // a host that does not resolve
		"/services/Bad Name/h1:x:81":       "10.0.0.3:1",      // invalid SERVICE_NAME
		"/services/api/h1:api_1:82":        "not-an-address",  // value is not ip:port
		"/services/api/h1:api_2:83":        "0.0.0.0:31000",   // never an address to forward to
		"/services/api/h1:api_1:84/deeper": "10.0.0.1:1",      // key is not the layout
		"/elsewhere/web/h1:web_1:80":       "10.0.0.7:1",      // not below the prefix: not ours
		"/services/dns/h1:dns:53:udp":      "10.0.0.3:31053",  // fine
		"/services/web@99999/h1:w:1":       "10.0.0.3:31053",  // bad port override
		"/services/udp/h1:u:notaport:udp":  "10.0.0.3:31053",  // bad port
		"/services/ok/h1:ok:85":            " 10.0.0.4:31085", // fine (value trimmed)
	})
	st.services(context.Background())
	got, omitted := book.Entries(explain.Filter{})
	if omitted != 0 {
		t.Errorf("omitted %d", omitted)
	}
	byKey := map[string]explain.Entry{}
	for _, e := range got {
		if e.Source != "registrator" {
			t.Errorf("entry from source %q", e.Source)
		}
		byKey[e.App] = e
	}
	want := map[string]struct {
		reason  explain.Reason
		service string
		port    int
		detail  string
	}{
		"/services/zeta/h1:z:80":           {explain.UnresolvableHost, "zeta", 80, "node-9 does not resolve"},
		"/services/Bad Name/h1:x:81":       {explain.InvalidName, "", 0, `"bad name" is not a valid name`},
		"/services/api/h1:api_1:82":        {explain.MalformedKey, "api", 82, `"not-an-address" is not ip:port`},
		"/services/api/h1:api_2:83":        {explain.InvalidAddress, "api", 83, "never a service"},
		"/services/api/h1:api_1:84/deeper": {explain.MalformedKey, "", 0, "key is not"},
		"/services/web@99999/h1:w:1":       {explain.MalformedKey, "", 0, "port after '@'"},
		"/services/udp/h1:u:notaport:udp":  {explain.MalformedKey, "udp", 0, `port "notaport"`},
	}
	if len(byKey) != len(want) {
		t.Errorf("%d entries, want %d: %+v", len(byKey), len(want), got)
	}
	for key, w := range want {
		e, ok := byKey[key]
		if !ok {
			t.Errorf("no entry for %s", key)
			continue
		}
		if e.Reason != w.reason || e.Service != w.service || e.Port != w.port || !strings.Contains(e.Detail, w.detail) {
			t.Errorf("%s: %+v, want reason %s service %q port %d detail ~%q", key, e, w.reason, w.service, w.port, w.detail)
		}
	}
	if e := byKey["/services/zeta/h1:z:80"]; e.Task != "h1:z:80" || e.Protocol != "tcp" {
		t.Errorf("task/protocol of the unresolvable-host entry: %+v", e)
	}
	// The app filter takes the etcd key.
	if got, _ := book.Entries(explain.Filter{App: "/services/api/h1:api_1:82"}); len(got) != 1 {
		t.Errorf("filter by key: %+v", got)
	}

	// Fixing a key, deleting another, and the host resolving (zeta now
	// names node-4) each remove that key's reason on the next compile.
	st.apply([]change{
		{key: "/services/api/h1:api_1:82", value: "10.0.0.5:31082"},
		{key: "/services/Bad Name/h1:x:81", deleted: true},
		{key: "/services/zeta/h1:z:80", value: "node-4:1"},
	})
	st.services(context.Background())
	got, _ = book.Entries(explain.Filter{})
	for _, e := range got {
		switch e.App {
		case "/services/api/h1:api_1:82", "/services/Bad Name/h1:x:81", "/services/zeta/h1:z:80":
			t.Errorf("reason kept after the key was fixed, deleted or won: %+v", e)
		}
	}
	if len(got) != 4 {
		t.Errorf("%d entries after the fixes, want 4: %+v", len(got), got)
	}

	// Marathon's entries in the same book are left alone.
	book.Set("marathon /x", []explain.Entry{{Source: "marathon", App: "/x", Reason: explain.NotRunning}})
	st.replace(map[string]string{})
	st.services(context.Background())
	if got, _ := book.Entries(explain.Filter{}); len(got) != 1 || got[0].Source != "marathon" {
		t.Errorf("after every key is gone: %+v", got)
	}
}

func TestKeyErrorReasons(t *testing.T) {
	for _, c := range []struct {
		rel, value string
		reason     explain.Reason
	}{
		{"web", "10.0.0.1:1", explain.MalformedKey},
		{"-web/h:c:80", "10.0.0.1:1", explain.InvalidName},
		{"web/h:c:80", "[fe80::1%eth0]:1", explain.InvalidAddress},
		{"web/h:c:80", "10.0.0.1:0", explain.InvalidAddress},
		{"web/h:c:80", "web.example.com:notaport", explain.MalformedKey},
		{"web/h:c:80", "224.0.0.1:80", explain.InvalidAddress},
	} {
		_, err := ParseKey(c.rel, c.value)
		ke, ok := err.(*KeyError)
		if !ok || ke.Reason != c.reason {
			t.Errorf("ParseKey(%q, %q) = %v, want a %s KeyError", c.rel, c.value, err, c.reason)
		}
	}
}
