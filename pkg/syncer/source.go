package syncer

import (
	"context"

	"github.com/meltwater/proxymatic/pkg/services"
)

// Source is what the daemon needs of a discovery source. Sources live in
// their own packages (marathon, registrator) and know nothing of the daemon.
type Source interface {
	// Name identifies the source in logs, metrics and /status ("marathon",
	// "registrator"). Precedence between sources is the order the daemon is
	// given them in, not the name.
	Name() string

	// Fetch reads the source's complete state once. The services it returns
	// are valid by the services contract and carry their Source field, and
	// they are the caller's: the source keeps no reference to them (the
	// daemon sorts and trims them in place).
	Fetch(ctx context.Context) ([]services.Service, error)

	// Watch follows the source until ctx is done, calling publish with each
	// complete state it reads successfully. A failed read publishes nothing:
	// the daemon keeps the last good state. Watch retries on its own and
	// returns only when ctx is done (nil) or on a configuration error.
	// publish is never called concurrently by one source.
	Watch(ctx context.Context, publish func([]services.Service)) error
}
