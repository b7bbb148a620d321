package syncer

import (
	"fmt"
	"log/slog"

	"github.com/meltwater/proxymatic/pkg/config"
	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/marathon"
	"github.com/meltwater/proxymatic/pkg/registrator"
)

// newSources builds the configured sources in precedence order: Marathon
// first, so its services win over registrator's on the same port.
//
// TLS material is read from the environment here, not from flags: these
// variables are the original image's interface and carry file paths only.
// Both record why they leave something out in book.
func newSources(cfg *config.Sync, logger *slog.Logger, getenv func(string) string, book *explain.Book) ([]Source, error) {
	var out []Source
	if len(cfg.Marathon) > 0 {
		m, err := marathon.New(marathon.Options{
			URLs:            cfg.Marathon,
			ExposeHost:      cfg.ExposeHost,
			GroupSize:       cfg.GroupSize,
			HealthCacheSize: cfg.HealthCacheSize,
			RefreshInterval: cfg.RefreshInterval,
			CACertFile:      getenv("MARATHON_CA_CERT"),
			MaxBody:         cfg.MarathonMaxBody,
			RequestTimeout:  cfg.MarathonTimeout,
			Logger:          logger,
			Explain:         book,
		})
		if err != nil {
			return nil, fmt.Errorf("marathon source: %w", err)
		}
		out = append(out, m)
	}
	if cfg.Registrator != "" {
		r, err := registrator.New(registrator.Options{
			URL:     cfg.Registrator,
			CACert:  getenv("ETCD_CA_CERT"),
			Cert:    getenv("ETCD_CERT"),
			Key:     getenv("ETCD_KEY"),
			Logger:  logger,
			Explain: book,
		})
		if err != nil {
			return nil, fmt.Errorf("registrator source: %w", err)
		}
		out = append(out, r)
	}
	return out, nil
}
