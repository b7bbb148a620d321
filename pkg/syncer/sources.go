package syncer

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/meltwater/proxymatic/pkg/config"
	"github.com/meltwater/proxymatic/pkg/marathon"
)

// newSources builds the configured sources in precedence order: Marathon
// first, so its services win over registrator's on the same port.
//
// TLS material is read from the environment here, not from flags: these
// variables are the original image's interface and carry file paths only.
func newSources(cfg *config.Sync, logger *slog.Logger, getenv func(string) string) ([]Source, error) {
	var out []Source
	if len(cfg.Marathon) > 0 {
		m, err := marathon.New(marathon.Options{
			URLs:            cfg.Marathon,
			ExposeHost:      cfg.ExposeHost,
			GroupSize:       cfg.GroupSize,
			RefreshInterval: cfg.RefreshInterval,
			CACertFile:      getenv("MARATHON_CA_CERT"),
			Logger:          logger,
		})
		if err != nil {
			return nil, fmt.Errorf("marathon source: %w", err)
		}
		out = append(out, m)
	}
	if cfg.Registrator != "" {
		return nil, errors.New("the registrator source is not built yet")
	}
	return out, nil
}
