package render_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/meltwater/proxymatic/pkg/render"
)

func opts() render.Options {
	return render.Options{HAProxy: true, VHostDomain: "apps.example.com", VHostPort: 8000, MaxConnections: 1024,
		PenServers: 4, PenClients: 1024, RunDir: "/var/run/proxymatic"}
}

func TestDryRunSmoke(t *testing.T) {
	var out bytes.Buffer
	dir := t.TempDir()
	err := render.DryRun(context.Background(), opts(), "testdata/services.yaml", dir, true, &out)
	t.Logf("%s\nerr=%v", out.String(), err)
}
