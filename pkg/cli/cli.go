// Package cli builds the two command lines. It parses flags and their
// environment variables into pkg/config, sets up logging and signals, and
// hands over to the daemons; the behaviour lives in their packages.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/meltwater/proxymatic/pkg/config"
	"github.com/meltwater/proxymatic/pkg/logging"
	"github.com/spf13/cobra"
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
	Stdout io.Writer
	Stderr io.Writer
}

// OSEnv is the real process environment.
func OSEnv() Env {
	return Env{Args: os.Args[1:], Getenv: os.Getenv, Stdout: os.Stdout, Stderr: os.Stderr}
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

// prepare reads the variables into flags not given, builds the logger and
// returns a context cancelled on SIGTERM or SIGINT.
func prepare(cmd *cobra.Command, env Env, verbose *bool) (*slog.Logger, error) {
	if err := config.ApplyEnv(cmd.Flags(), env.Getenv); err != nil {
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

func newCommand(use, short string, env Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:           use,
		Short:         short,
		Args:          noArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &config.UsageError{Msg: err.Error()}
	})
	cmd.Flags().SortFlags = false
	return cmd
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &config.UsageError{Msg: fmt.Sprintf("unexpected argument %q (see --help)", args[0])}
	}
	return nil
}

// signalContext is cancelled by the first SIGTERM or SIGINT; the cause says which.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}
