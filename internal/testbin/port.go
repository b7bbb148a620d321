package testbin

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"
)

// Ports for proxies to listen on are taken below the kernel's ephemeral
// range (32768-60999 by default). A port from ":0" lies inside it, where
// the tests' own outgoing connections can take it again (or leave it in
// TIME_WAIT) before the proxy binds it, and the proxy then fails to start:
// seen with HAProxy in the load tests. Each test process starts at its own
// offset, so packages running in parallel rarely probe the same ports.
var nextPort atomic.Int32

func init() { nextPort.Store(int32(10000 + (os.Getpid()%90)*200)) }

// FreePort returns a port that is free for network ("tcp" or "udp") on all
// addresses, outside the ephemeral range.
func FreePort(t testing.TB, network string) int {
	t.Helper()
	for range 22000 {
		p := int(nextPort.Add(1))
		if p >= 32000 {
			nextPort.Store(10000)
			continue
		}
		if free(network, p) {
			return p
		}
	}
	t.Fatalf("no free %s port below the ephemeral range", network)
	return 0
}

func free(network string, p int) bool {
	addr := fmt.Sprintf(":%d", p)
	if network == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}
