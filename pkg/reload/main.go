package reload

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/meltwater/proxymatic/pkg/config"
)

// Main runs proxymatic-reload with a validated configuration until ctx is
// done; with --dry-run it renders, checks and returns.
func Main(ctx context.Context, cfg *config.Reload, logger *slog.Logger, stdout io.Writer) error {
	return errors.New("the reload agent is not built yet")
}
