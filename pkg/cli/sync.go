package cli

import (
	"github.com/meltwater/proxymatic/pkg/config"
	"github.com/meltwater/proxymatic/pkg/syncer"
	"github.com/spf13/cobra"
)

// NewSync returns the proxymatic-sync command.
func NewSync(env Env) *cobra.Command {
	var cfg config.Sync
	cmd := newCommand("proxymatic-sync", "Compile Marathon and registrator state into services.yaml", env)
	cmd.Long = `proxymatic-sync follows Marathon (REST and its /v2/events stream) and registrator's entries in
etcd, and writes one normalized, deterministic services.yaml (atomically, only when it changes)
for proxymatic-reload to follow. Every flag also reads the environment variable shown; the flag wins.`
	config.BindSync(cmd.Flags(), &cfg)
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
		return syncer.Main(ctx, &cfg, logger, env.Stdout)
	}
	return cmd
}
