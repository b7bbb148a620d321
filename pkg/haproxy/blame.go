package haproxy

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/meltwater/proxymatic/pkg/services"
)

// Blame maps the errors `haproxy -c` reported for cfg (checked at cfgPath)
// to the services they point at, so the reload agent can leave those out
// and apply the rest instead of holding every change back. An error points
// at a service when it names a line of a section of that service
// ("parsing [haproxy.cfg:52] : ...") or the section itself ("proxy
// 'web-8080'", "'server web-8080/…'"). A section belongs to the service
// whose "<name>-<port>" its name is, or ends with before a non-digit: the
// embedded template names each listen exactly that, and an overriding
// template that keeps the name in its frontends and backends is understood
// too.
//
// The result maps each blamed service to the proxy's lines about it. all
// is false when some error points at no service (the global or defaults
// section, a template's own section, a message without a place): leaving
// services out cannot fix that config, so the caller keeps the last good
// one.
func Blame(cfg []byte, cfgPath, msg string, svcs []services.Service) (blamed map[services.Key]string, all bool) {
	secs := sections(cfg)
	ids := make(map[string]int, len(svcs)) // "<name>-<port>" -> index in svcs
	byPort := make(map[int]int, len(svcs))
	for i := range svcs {
		ids[svcs[i].Name+"-"+strconv.Itoa(svcs[i].Port)] = i
		byPort[svcs[i].Port] = i
	}
	owner := func(section string) (int, bool) {
		if i, ok := ids[section]; ok {
			return i, true
		}
		return ownerByPort(section, svcs, byPort)
	}
	blamed = map[services.Key]string{}
	all = true
	errors := 0
	for _, line := range strings.Split(msg, "\n") {
		if !strings.Contains(line, "[ALERT]") || summaryAlert(line) {
			continue
		}
		errors++
		text := alertText(line)
		i, ok := -1, false
		if m := placeRE.FindStringSubmatch(line); m != nil && samePath(m[1], cfgPath) {
			if n, err := strconv.Atoi(m[2]); err == nil {
				if s := secs.at(n); s != "" {
					i, ok = owner(s)
				}
			}
		}
		if !ok {
			for _, m := range nameRE.FindAllStringSubmatch(line, -1) {
				if i, ok = owner(cmpOr(m[1], m[2])); ok {
					break
				}
			}
		}
		if !ok {
			all = false
			continue
		}
		k := svcs[i].Key()
		if blamed[k] != "" {
			blamed[k] += "\n"
		}
		blamed[k] += text
	}
	if errors == 0 {
		all = false // a failure without an alert: nothing to go on
	}
	return blamed, all
}

var (
	// "parsing [path:52]" or "config : [path:52] :"
	placeRE = regexp.MustCompile(`\[([^\[\]]+):(\d+)\]`)
	// "proxy 'x'", "Proxy 'x'", "backend 'x'", "'server x/s1'"
	nameRE = regexp.MustCompile(`(?i)(?:proxy|backend|frontend|listen) '([^']+)'|'server ([^'/ ]+)/`)
	// "[ALERT]    (123) : config : "
	alertPrefixRE = regexp.MustCompile(`^\[ALERT\]\s*\(\d+\)\s*:\s*(?:config\s*:\s*)?`)
)

// summaryAlert is one of the closing lines that only say the check failed.
func summaryAlert(line string) bool {
	return strings.Contains(line, "Error(s) found in configuration file") ||
		strings.Contains(line, "Fatal errors found in configuration")
}

func alertText(line string) string {
	return alertPrefixRE.ReplaceAllString(strings.TrimSpace(line), "")
}

func samePath(a, b string) bool { return a == b || filepath.Base(a) == filepath.Base(b) }

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ownerByPort finds the service whose "<name>-<port>" ends section's name
// up to a non-digit ("be_web-8080", "web-8080-servers"). TCP ports are
// unique in a HAProxy config, so the port decides and the name confirms.
func ownerByPort(section string, svcs []services.Service, byPort map[int]int) (int, bool) {
	for i := 0; i < len(section); i++ {
		if section[i] != '-' {
			continue
		}
		j := i + 1
		for j < len(section) && section[j] >= '0' && section[j] <= '9' {
			j++
		}
		if j == i+1 || (j < len(section) && section[j] >= '0' && section[j] <= '9') {
			continue
		}
		port, err := strconv.Atoi(section[i+1 : j])
		if err != nil {
			continue
		}
		if k, ok := byPort[port]; ok && strings.HasSuffix(section[:i], svcs[k].Name) {
			return k, true
		}
	}
	return 0, false
}

// sectionKeywords start a section in HAProxy 2.6's configuration.
var sectionKeywords = map[string]bool{
	"global": true, "defaults": true, "frontend": true, "backend": true, "listen": true,
	"userlist": true, "peers": true, "resolvers": true, "mailers": true, "program": true,
	"http-errors": true, "ring": true, "cache": true, "fcgi-app": true, "log-forward": true,
	"dynamic-update": true,
}

// sectionMap gives, for each line of a config (from 1), the name of the
// section it is in ("" before the first and for unnamed sections).
type sectionMap []string

func (m sectionMap) at(line int) string {
	if line < 1 || line > len(m) {
		return ""
	}
	return m[line-1]
}

func sections(cfg []byte) sectionMap {
	m := make(sectionMap, 0, bytes.Count(cfg, []byte{'\n'})+1)
	cur := ""
	for len(cfg) > 0 {
		line := cfg
		if i := bytes.IndexByte(cfg, '\n'); i >= 0 {
			line, cfg = cfg[:i], cfg[i+1:]
		} else {
			cfg = nil
		}
		f := bytes.Fields(line)
		if len(f) > 0 && sectionKeywords[string(f[0])] {
			cur = ""
			if len(f) > 1 {
				cur = string(f[1])
			}
		}
		m = append(m, cur)
	}
	return m
}
