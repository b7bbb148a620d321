// Package cli is what the two command lines share: it parses flags and their
// environment variables into pkg/config, sets up logging and signals, maps
// errors to exit codes, and hands over to the daemons. The commands
// themselves are in synccmd and reloadcmd; the behaviour lives in the
// daemons' packages.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/meltwater/proxymatic/pkg/config"
	"github.com/meltwater/proxymatic/pkg/logging"
	"github.com/meltwater/proxymatic/pkg/version"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes: 2 is a usage error (a bad flag or variable), 1 anything else.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// Env is the process environment the commands read; tests pass their own.
type Env struct {
	Args   []string
	Getenv func(string) string
	// LookupEnv, when set, tells a variable set to "" from an unset one
	// (STATUS_ENDPOINT="" turns the endpoint off); nil reads Getenv, where
	// "" is unset.
	LookupEnv func(string) (string, bool)
	Stdout    io.Writer
	Stderr    io.Writer
}

// OSEnv is the real process environment.
func OSEnv() Env {
	return Env{Args: os.Args[1:], Getenv: os.Getenv, LookupEnv: os.LookupEnv, Stdout: os.Stdout, Stderr: os.Stderr}
}

// Execute runs cmd and maps its outcome to an exit code.
func Execute(cmd *cobra.Command, env Env) int {
	cmd.SetArgs(env.Args)
	cmd.SetOut(env.Stdout)
	cmd.SetErr(env.Stderr)
	err := cmd.Execute()
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(env.Stderr, "%s: %v\n", cmd.Name(), err)
	var ue *config.UsageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	return ExitError
}

// Command is one of the two programs: its help, its flags, and what it runs
// once they (and their environment variables) are read and valid. Each
// program lives in its own package (synccmd, reloadcmd) so that a binary
// links, and initialises at start-up, only its own side: proxymatic-reload
// carries no etcd or gRPC client.
type Command struct {
	Use, Short, Long string
	// Bind registers the flags; Verbose is the flag that turns on debug logs.
	Bind    func(*pflag.FlagSet)
	Verbose *bool
	// Validate checks the whole configuration once every flag is read.
	Validate func() error
	// Batch reports, once the flags are read, whether this run ends by
	// itself and keeps most of what it allocates to the end (reload
	// --dry-run), so that the collector can wait; see batchGC.
	Batch func() bool
	// Run is the program; ctx ends on SIGTERM or SIGINT. stderr is where
	// the logger writes, for reports beside the logs (sync --explain).
	Run func(ctx context.Context, logger *slog.Logger, stdout, stderr io.Writer) error
}

// Build returns the cobra command for c, reading flags from env.
func (c Command) Build(env Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:           c.Use,
		Short:         c.Short,
		Long:          c.Long,
		Args:          noArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version: cobra answers it before any flag or variable is
		// checked, so it works without a configuration.
		Version: version.Get().String(),
	}
	cmd.SetVersionTemplate("{{.Name}} {{.Version}}\n")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &config.UsageError{Msg: err.Error()}
	})
	cmd.Flags().SortFlags = false
	c.Bind(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		logger, err := prepare(cmd, env, c.Verbose)
		if err != nil {
			return err
		}
		if err := c.Validate(); err != nil {
			return err
		}
		if c.Batch != nil && c.Batch() {
			defer batchGC(env.Getenv)()
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		// Neither signal may end the process. SIGPIPE: by Go's default, a
		// write to a closed pipe on stdout or stderr kills the program, so a
		// lost log reader would take the agent, and with it every proxy,
		// down at its next log line; handled, the write fails with EPIPE
		// and only log lines are lost. (Notify rather than Ignore: an
		// ignored signal stays ignored in the proxies exec'd from here.)
		// SIGHUP: the daemons register their own handler (sync refreshes
		// every source, reload applies the file again); this one covers the
		// moments before they do and the runs that have none (--once).
		shield := make(chan os.Signal, 1)
		signal.Notify(shield, syscall.SIGPIPE, syscall.SIGHUP)
		defer signal.Stop(shield)
		return c.Run(ctx, logger, env.Stdout, env.Stderr)
	}
	return cmd
}

// batchMemoryLimit is where a batch run's collector starts working.
const batchMemoryLimit = 256 << 20

// batchGC tunes the garbage collector for a batch run, and returns what
// restores the previous settings. Such a run allocates a few tens of
// megabytes that stay live to its end (a reload dry run at 10,000 services:
// ~20 MB), so collecting on the way only costs CPU: measured, the dry run's
// median wall time drops from 170 to 140 ms. The collector is off until the
// heap reaches batchMemoryLimit, where it works as usual, so no input can
// make the run need much more memory than that. GOGC or GOMEMLIMIT in the
// environment win.
func batchGC(getenv func(string) string) (restore func()) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	percent := debug.SetGCPercent(-1)
	limit := debug.SetMemoryLimit(batchMemoryLimit)
	return func() {
		debug.SetMemoryLimit(limit)
		debug.SetGCPercent(percent)
	}
}

// prepare reads the variables into flags not given, builds the logger and
// sets it as slog's default.
func prepare(cmd *cobra.Command, env Env, verbose *bool) (*slog.Logger, error) {
	var err error
	if env.LookupEnv != nil {
		err = config.ApplyEnvLookup(cmd.Flags(), env.LookupEnv)
	} else {
		err = config.ApplyEnv(cmd.Flags(), env.Getenv)
	}
	if err != nil {
		return nil, err
	}
	logger, err := logging.New(env.Stderr, env.Getenv("LOG_FORMAT"), *verbose)
	if err != nil {
		return nil, &config.UsageError{Msg: err.Error()}
	}
	// Packages that log without a logger handed to them (slog.Warn) get the
	// same format and level.
	slog.SetDefault(logger)
	return logger, nil
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &config.UsageError{Msg: fmt.Sprintf("unexpected argument %q (see --help)", args[0])}
	}
	return nil
}
