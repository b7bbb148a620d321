package services_test

import (
	"bytes"
	"testing"

	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/services/servicestest"
)

// Whatever valid services sync writes, the reload side reads them through
// the fast path (a file that silently fell back to yaml.v3 would cost a
// reload ~20 times more at 10,000 services), and reads back what was
// written.
func TestEncodedFilesTakeTheFastPath(t *testing.T) {
	for seed, n := range map[uint64]int{1: 0, 2: 1, 3: 50, 4: 2000} {
		f := services.File{Version: services.Version, Services: servicestest.Generate(seed, n)}
		var w bytes.Buffer
		if _, err := f.WriteTo(&w); err != nil {
			t.Fatal(err)
		}
		d, ok := services.ParseCanonical(w.Bytes())
		if !ok {
			t.Fatalf("seed %d, %d services: the fast path declined Encode's output", seed, n)
		}
		if len(d.File.Services) != n {
			t.Fatalf("seed %d: %d services read, %d written", seed, len(d.File.Services), n)
		}
		for i := range d.File.Services {
			if !d.File.Services[i].Equal(&f.Services[i]) {
				t.Fatalf("seed %d: service %d read as %+v, written %+v", seed, i, d.File.Services[i], f.Services[i])
			}
		}
	}
}
