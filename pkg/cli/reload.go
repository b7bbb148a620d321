package cli

import (
	"github.com/meltwater/proxymatic/pkg/config"
	"github.com/meltwater/proxymatic/pkg/reload"
	"github.com/spf13/cobra"
)

// NewReload returns the proxymatic-reload command.
func NewReload(env Env) *cobra.Command {
	var cfg config.Reload
	cmd := newCommand("proxymatic-reload", "Run HAProxy, nginx and pen from services.yaml", env)
	cmd.Long = `proxymatic-reload follows services.yaml, renders HAProxy, nginx (virtual hosts) and pen (TCP and UDP)
configs, checks each with the proxy itself and reloads gracefully, keeping the last good config on any
bad input. With --dry-run it renders and checks into --output-dir and exits (the CI path).
Every flag also reads the environment variable shown; the flag wins.`
	config.BindReload(cmd.Flags(), &cfg)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		logger, err := prepare(cmd, env, &cfg.Verbose)
		if err != nil {
			return err
		}
		if err := cfg.Validate(); err != nil {
			return err
		}
		ctx, stop := signalContext()
		defer stop()
		return reload.Main(ctx, &cfg, logger, env.Stdout)
	}
	return cmd
}
