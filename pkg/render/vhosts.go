package render

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"strconv"
	"strings"

	"github.com/meltwater/proxymatic/pkg/atomicfile"
	"github.com/meltwater/proxymatic/pkg/services"
)

// VHostClaimsFile is where the agent keeps which service holds each
// virtual host name, beside the pen slots.
func VHostClaimsFile(runDir string) string { return runDir + "/nginx-vhosts.json" }

// VHostClaims remembers, across plans and restarts, which service (by
// port and protocol) serves each virtual host name, so that a service that
// later claims the same name never takes it over (see NewPlanHeld). The
// zero value holds nothing.
type VHostClaims struct {
	byHost map[string]services.Key
	// changed: byHost differs from what was last loaded or saved. Save
	// writes only then: at 10,000 virtual hosts a save is ~10 ms of JSON
	// and file compare, and nearly every apply changes no holder.
	changed bool
}

// keep replaces the claims with this plan's holders: a name no service
// claims any more is forgotten.
func (c *VHostClaims) keep(owners map[string]services.Key) {
	if !maps.Equal(c.byHost, owners) {
		c.changed = true
	}
	c.byHost = owners
}

// Holder is the service holding host, and whether one does.
func (c *VHostClaims) Holder(host string) (services.Key, bool) {
	k, ok := c.byHost[host]
	return k, ok
}

// claimsFile is the saved form: host -> "port/protocol".
type claimsFile struct {
	Version int               `json:"version"`
	Hosts   map[string]string `json:"hosts"`
}

// LoadVHostClaims reads the claims saved at path; a missing file holds
// nothing. An unreadable one is an error (the caller starts empty: only
// the holders of shared names may change once).
func LoadVHostClaims(path string) (*VHostClaims, error) {
	c := &VHostClaims{}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("vhost claims: %w", err)
	}
	var f claimsFile
	if err := json.Unmarshal(data, &f); err != nil || f.Version != 1 {
		return c, fmt.Errorf("vhost claims %s: not a version 1 claims file", path)
	}
	c.byHost = make(map[string]services.Key, len(f.Hosts))
	for host, key := range f.Hosts {
		port, proto, _ := strings.Cut(key, "/")
		n, err := strconv.Atoi(port)
		if err != nil || !services.ValidName(host) || proto != string(services.TCP) {
			return &VHostClaims{}, fmt.Errorf("vhost claims %s: bad entry", path)
		}
		c.byHost[host] = services.Key{Port: n, Protocol: services.TCP}
	}
	return c, nil
}

// Save writes the claims to path (0640, replaced atomically) when they
// changed since they were loaded or last saved.
func (c *VHostClaims) Save(path string) error {
	if !c.changed {
		return nil
	}
	f := claimsFile{Version: 1, Hosts: make(map[string]string, len(c.byHost))}
	for host, k := range c.byHost {
		f.Hosts[host] = k.String()
	}
	data, err := json.Marshal(f) // sorted keys: same claims, same bytes
	if err != nil {
		return fmt.Errorf("vhost claims: %w", err)
	}
	if _, err := atomicfile.New(path, RenderedMode).Write(append(data, '\n')); err != nil {
		return fmt.Errorf("vhost claims: %w", err) // still changed: the next apply tries again
	}
	c.changed = false
	return nil
}
