//go:build unix

package services

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openLarge writes the encoding of a large file and opens it.
func openLarge(t *testing.T, n int) (*os.File, []byte) {
	t.Helper()
	path, data := writeLarge(t, n)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, data
}

func writeLarge(t *testing.T, n int) (string, []byte) {
	t.Helper()
	f := large(n, 4)
	data := f.Encode()
	if len(data) < mapMin {
		t.Fatalf("test file is %d bytes, under mapMin", len(data))
	}
	path := filepath.Join(t.TempDir(), "services.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// A large file is read through a mapping, gives what Parse gives for its
// bytes, and nothing of the result points into the mapping once it is gone
// (reading a string that did would fault and fail the test).
func TestReadFileMapsLargeFiles(t *testing.T) {
	f, data := openLarge(t, 5000)
	got, mapped, err := readMapped(f, nil)
	if !mapped || err != nil {
		t.Fatalf("readMapped = mapped %v, %v", mapped, err)
	}
	want, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.File.Services) != len(want.File.Services) {
		t.Fatalf("%d services, want %d", len(got.File.Services), len(want.File.Services))
	}
	var b strings.Builder
	for i := range got.File.Services {
		s := &got.File.Services[i]
		if !s.Equal(&want.File.Services[i]) || s.Line != want.File.Services[i].Line {
			t.Fatalf("service %d differs", i)
		}
		b.WriteString(s.Name)
		for _, srv := range s.Servers {
			b.WriteString(srv.Host)
		}
	}
	if b.Len() == 0 {
		t.Fatal("no names read")
	}
}

// A file truncated in place while it is mapped faults when read past its new
// end (here cut at a page boundary, so the text before it is valid and the
// reader goes on into the missing pages): that must be an error, not the end
// of the process.
func TestReadMappedFileTruncatedWhileRead(t *testing.T) {
	f, _ := openLarge(t, 5000)
	d, mapped, err := readMapped(f, func() {
		if err := os.Truncate(f.Name(), int64(2*os.Getpagesize())); err != nil {
			t.Fatal(err)
		}
	})
	if !mapped || err == nil || d != nil {
		t.Fatalf("readMapped of a truncated file = %v, mapped %v, %v; want an error", d, mapped, err)
	}
	if !strings.Contains(err.Error(), "changed while it was read") {
		t.Errorf("error does not say what happened: %v", err)
	}
}

func TestReadFileSmallFileIsRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services.yaml")
	if err := os.WriteFile(path, []byte("version: 1\nservices: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, mapped, _ := readMapped(f, nil); mapped {
		t.Error("a small file was mapped")
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	if d, err := ReadFile(f); err != nil || len(d.File.Services) != 0 {
		t.Fatalf("ReadFile = %v, %v", d, err)
	}
}
