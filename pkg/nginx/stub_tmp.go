package nginx

import (
	"context"
	"errors"
	"text/template"
)

var errTODO = errors.New("nginx: not implemented yet")

func loadTemplate(dir string) (*template.Template, error)          { return nil, errTODO }
func render(p Params, v []VHost) ([]byte, error)                   { return nil, errTODO }
func check(ctx context.Context, bin, prefix, cfgPath string) error { return errTODO }
func makeDirs(runDir string) error                                 { return errTODO }
