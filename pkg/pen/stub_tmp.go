package pen

import (
	"errors"
	"strconv"
	"text/template"

	"github.com/meltwater/proxymatic/pkg/services"
)

var errTODO = errors.New("pen: not implemented yet")

type table struct{}

func configName(k services.Key) string {
	return strconv.Itoa(k.Port) + "-" + string(k.Protocol) + ".cfg"
}
func loadTemplate(dir string) (*template.Template, error)            { return nil, errTODO }
func render(p Params, s services.Service, sl *Slots) ([]byte, error) { return nil, errTODO }
func newSlots(n int) *Slots                                          { return &Slots{size: n} }
func loadSlots(path string, n int) (*Slots, error)                   { return nil, errTODO }
func (s *Slots) save(path string) error                              { return errTODO }
func (s *Slots) retain(keep []services.Key)                          {}
func (s *Slots) dropped(k services.Key) int                          { return 0 }
func parse(data []byte) error                                        { return errTODO }
