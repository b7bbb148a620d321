// Package reloadcmd is the proxymatic-reload command line: its flags and
// variables (pkg/config.Reload) handed to pkg/reload.
package reloadcmd

import (
	"context"
	"io"
	"log/slog"

	"github.com/meltwater/proxymatic/pkg/cli"
	"github.com/meltwater/proxymatic/pkg/config"
	"github.com/meltwater/proxymatic/pkg/reload"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// New returns the proxymatic-reload command.
func New(env cli.Env) *cobra.Command {
	var cfg config.Reload
	return cli.Command{
		Use:   "proxymatic-reload",
		Short: "Run HAProxy, nginx and pen from services.yaml",
		Long: `proxymatic-reload follows services.yaml, renders HAProxy, nginx (virtual hosts) and pen (TCP and UDP)
configs, checks each with the proxy itself and reloads gracefully, keeping the last good config on any
bad input. With --dry-run it renders and checks into --output-dir and exits (the CI path).
Every flag also reads the environment variable shown; the flag wins.`,
		Bind:     func(fs *pflag.FlagSet) { config.BindReload(fs, &cfg) },
		Verbose:  &cfg.Verbose,
		Validate: func() error { return cfg.Validate() },
		Batch:    func() bool { return cfg.DryRun },
		Run: func(ctx context.Context, logger *slog.Logger, stdout, _ io.Writer) error {
			return reload.Main(ctx, &cfg, logger, stdout)
		},
	}.Build(env)
}
