package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for raw, want := range map[string]string{
		"http://alice:s3cr3t@marathon:8080":       "http://alice:xxxxx@marathon:8080",
		"alice:s3cr3t@host:8080":                  "alice:xxxxx@host:8080",
		"etcd://u:s3cr3t@h:2379/p":                "etcd://u:xxxxx@h:2379/p",
		"http://alice:s3/cr3t@host:8080":          "http://alice:xxxxx@host:8080",
		"http://alice:s3#cr3t@host:8080":          "http://alice:xxxxx@host:8080",
		"http://alice:s3?cr3t@host:8080":          "http://alice:xxxxx@host:8080",
		"http://alice:s3@cr3t@host:8080":          "http://alice:xxxxx@host:8080",
		"http://alice:s3cr3t@host:8080/v2?q#f":    "http://alice:xxxxx@host:8080/v2?q#f",
		"http://s3cr3t@host:8080":                 "http://xxxxx@host:8080",
		"http://host:8080/v2":                     "http://host:8080/v2",
		"file:///tmp/apps.json":                   "file:///tmp/apps.json",
		"not a url at all":                        "not a url at all",
		"http://alice:s3cr3t@host:8080/x?to=a@b":  "http://alice:xxxxx@b",
		"http:/alice:s3cr3t@host":                 "http:xxxxx@host",
		"etcd://alice:s3cr3t@h1:2379,h2:2379/svc": "etcd://alice:xxxxx@h1:2379,h2:2379/svc",
	} {
		got := URL(raw)
		if got != want {
			t.Errorf("URL(%q) = %q, want %q", raw, got, want)
		}
		if strings.Contains(got, "s3") || strings.Contains(got, "cr3t") {
			t.Errorf("URL(%q) = %q shows the password", raw, got)
		}
	}
}
