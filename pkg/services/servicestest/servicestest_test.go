package servicestest

import (
	"reflect"
	"testing"

	"github.com/meltwater/proxymatic/pkg/services"
)

// Generate is deterministic, gives what it is asked for, and covers the
// shapes the writers' tests rely on.
func TestGenerate(t *testing.T) {
	a, b := Generate(7, 500), Generate(7, 500)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave different services")
	}
	if len(a) != 500 || reflect.DeepEqual(a, Generate(8, 500)) {
		t.Fatal("wrong count, or the seed is ignored")
	}
	var udp, http, health, timeouts, empty, v6, drained, limited, hostless int
	for _, s := range a {
		switch {
		case s.Protocol == services.UDP:
			udp++
		case s.Mode == services.ModeHTTP:
			http++
		}
		if s.HealthCheck != nil {
			health++
		}
		if s.Timeouts != nil {
			timeouts++
		}
		if len(s.Servers) == 0 {
			empty++
		}
		for _, srv := range s.Servers {
			if srv.IP.Is6() {
				v6++
			}
			if srv.Weight == 0 {
				drained++
			}
			if srv.MaxConn > 0 {
				limited++
			}
			if srv.Host == "" {
				hostless++
			}
		}
	}
	for name, n := range map[string]int{"udp": udp, "http": http, "health": health, "timeouts": timeouts, "no servers": empty,
		"ipv6": v6, "drained": drained, "maxconn": limited, "no host": hostless} {
		if n == 0 {
			t.Errorf("no %s in 500 services", name)
		}
	}
}
