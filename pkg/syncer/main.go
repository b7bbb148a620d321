package syncer

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/meltwater/proxymatic/pkg/config"
)

// Main runs proxymatic-sync with a validated configuration until ctx is done
// (or once, with --once).
func Main(ctx context.Context, cfg *config.Sync, logger *slog.Logger, stdout io.Writer) error {
	return errors.New("the sync daemon is not built yet")
}
