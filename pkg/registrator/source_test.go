package registrator_test

import (
	"github.com/meltwater/proxymatic/pkg/registrator"
	"github.com/meltwater/proxymatic/pkg/syncer"
)

// The daemon consumes the source through syncer.Source.
var _ syncer.Source = (*registrator.Source)(nil)
