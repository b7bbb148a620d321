package render

import (
	"context"
	"errors"
	"io"

	"github.com/meltwater/proxymatic/pkg/pen"
	"github.com/meltwater/proxymatic/pkg/services"
)

var errTODO = errors.New("render: not implemented yet")

func (o *Options) validate() error                                                  { return errTODO }
func newPlan(o Options, s []services.Service) Plan                                  { return Plan{} }
func loadTemplates(dir string) (*Templates, error)                                  { return nil, errTODO }
func renderFiles(o Options, t *Templates, p Plan, s *pen.Slots) (*Files, error)     { return nil, errTODO }
func dryRun(ctx context.Context, o Options, a, b string, v bool, w io.Writer) error { return errTODO }
