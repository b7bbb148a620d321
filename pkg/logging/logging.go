// Package logging builds the slog logger both binaries use: text by default,
// JSON with LOG_FORMAT=json, debug level with --verbose. The logger also
// keeps its most recent warnings and errors in a Ring (RingOf) for the
// status page.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// New returns a logger writing to w in the given format ("", "text" or
// "json"), keeping its last DefaultRingSize warnings and errors (RingOf).
func New(w io.Writer, format string, verbose bool) (*slog.Logger, error) {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch strings.ToLower(format) {
	case "", "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("invalid LOG_FORMAT %q: want text or json", format)
	}
	return slog.New(NewRingHandler(h, NewRing(DefaultRingSize))), nil
}
