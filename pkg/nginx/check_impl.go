package nginx

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

func check(ctx context.Context, bin, prefix, cfgPath string) error {
	var out bytes.Buffer
	// -e stderr: nginx opens its compiled-in error log before it reads the
	// config; on builds where that is a system path, -t would fail there.
	cmd := exec.CommandContext(ctx, bin, "-t", "-q", "-e", "stderr", "-p", prefix, "-c", cfgPath)
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nginx -t -p %s -c %s: %w: %s", prefix, cfgPath, err, strings.TrimSpace(out.String()))
	}
	return nil
}
