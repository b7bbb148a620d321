package marathon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// app holds only the fields of a Marathon app that the compile rules use;
// everything else in the (large) response is skipped by the decoder.
type app struct {
	ID              string            `json:"id"`
	Labels          map[string]string `json:"labels"`
	Ports           []int             `json:"ports"`
	PortDefinitions []portDef         `json:"portDefinitions"`
	Container       *container        `json:"container"`
	HealthChecks    []healthCheck     `json:"healthChecks"`
	Tasks           []task            `json:"tasks"`
}

type container struct {
	Docker       *docker       `json:"docker"`
	PortMappings []portMapping `json:"portMappings"` // Marathon 1.5+
}

type docker struct {
	PortMappings []portMapping `json:"portMappings"`
}

type portMapping struct {
	ServicePort int    `json:"servicePort"`
	Protocol    string `json:"protocol"`
}

type portDef struct {
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
}

type healthCheck struct {
	Protocol  string `json:"protocol"`
	Path      string `json:"path"`
	PortIndex *int   `json:"portIndex"`
}

type task struct {
	ID                 string     `json:"id"`
	Host               string     `json:"host"`
	State              *string    `json:"state"`
	Ports              []int      `json:"ports"`
	HealthCheckResults []hcResult `json:"healthCheckResults"`
}

type hcResult struct {
	Alive            bool   `json:"alive"`
	LastFailureCause string `json:"lastFailureCause"`
}

// decodeApps walks the response {"apps": [...]} token by token and decodes
// one app at a time, so the 30 MB document of a large cluster is never held
// whole, neither as bytes nor as a generic tree.
func decodeApps(r io.Reader) ([]app, error) {
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	var apps []app
	found := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		if key != "apps" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, err
			}
			continue
		}
		if found {
			return nil, errors.New(`"apps" given twice`)
		}
		found = true
		if err := expectDelim(dec, '['); err != nil {
			return nil, fmt.Errorf(`"apps": %w`, err)
		}
		for dec.More() {
			apps = append(apps, app{})
			if err := dec.Decode(&apps[len(apps)-1]); err != nil {
				return nil, fmt.Errorf("apps[%d]: %w", len(apps)-1, err)
			}
		}
		if err := expectDelim(dec, ']'); err != nil {
			return nil, err
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	if !found {
		return nil, errors.New(`no "apps" array in the response`)
	}
	return apps, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %q, got %v", want, tok)
	}
	return nil
}
