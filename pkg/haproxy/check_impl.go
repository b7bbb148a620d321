package haproxy

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

func check(ctx context.Context, bin, cfgPath string) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-c", "-f", cfgPath)
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("haproxy -c -f %s: %w: %s", cfgPath, err, strings.TrimSpace(out.String()))
	}
	return nil
}
