package haproxy

import (
	"context"
	"errors"
	"text/template"

	"github.com/meltwater/proxymatic/pkg/services"
)

var errTODO = errors.New("haproxy: not implemented yet")

func loadTemplate(dir string) (*template.Template, error)      { return nil, errTODO }
func render(p Params, svcs []services.Service) ([]byte, error) { return nil, errTODO }
func check(ctx context.Context, bin, cfgPath string) error     { return errTODO }
