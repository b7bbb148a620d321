package registrator

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// API is the etcd keys API a URL selects.
type API int

const (
	V2 API = 2 // etcd:// and etcds://: the v2 keys API over HTTP
	V3 API = 3 // etcd3:// and etcd3s://: the v3 API over gRPC
)

// DefaultPort is used for an endpoint written without a port.
const DefaultPort = 2379

// Config is a parsed REGISTRATOR_URL.
type Config struct {
	API       API
	Endpoints []string // host:port, IPv6 bracketed, in the order given
	Prefix    string   // the key prefix without its trailing '/', e.g. "/services"; "" for the root
	Username  string
	Password  string
	TLS       bool // the scheme asked for TLS (etcds://, etcd3s://)
}

// Redacted renders the config as a URL with the password masked, for logs.
func (c Config) Redacted() string {
	scheme := "etcd"
	if c.API == V3 {
		scheme = "etcd3"
	}
	if c.TLS {
		scheme += "s"
	}
	user := ""
	if c.Username != "" {
		user = url.User(c.Username).String()
		if c.Password != "" {
			user += ":xxxxx"
		}
		user += "@"
	}
	return scheme + "://" + user + strings.Join(c.Endpoints, ",") + (&url.URL{Path: c.Prefix}).EscapedPath()
}

// ParseURL parses REGISTRATOR_URL:
//
//	etcd://[user:password@]host:port[,host:port...]/prefix   (v2 keys API)
//	etcd3://[user:password@]host:port[,host:port...]/prefix  (v3 API)
//
// with etcds:// and etcd3s:// for TLS. Errors name the part that is wrong
// and never contain the password.
func ParseURL(raw string) (Config, error) {
	var c Config
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return c, fmt.Errorf("registrator URL: missing scheme: want etcd://host:port/prefix or etcd3://host:port/prefix")
	}
	switch strings.ToLower(scheme) {
	case "etcd":
		c.API = V2
	case "etcds":
		c.API, c.TLS = V2, true
	case "etcd3":
		c.API = V3
	case "etcd3s":
		c.API, c.TLS = V3, true
	default:
		return c, fmt.Errorf("registrator URL: scheme %q: want etcd, etcds, etcd3 or etcd3s", clip(scheme))
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		return c, fmt.Errorf("registrator URL: unexpected %q: a query or fragment has no meaning here", rest[i:i+1])
	}
	authority, path, _ := strings.Cut(rest, "/")
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		userinfo := authority[:i]
		authority = authority[i+1:]
		user, pass, hasPass := strings.Cut(userinfo, ":")
		var err error
		if c.Username, err = url.PathUnescape(user); err != nil || c.Username == "" {
			return c, fmt.Errorf("registrator URL: user name is empty or badly escaped")
		}
		if hasPass {
			if c.Password, err = url.PathUnescape(pass); err != nil {
				// The password itself is never shown.
				return c, fmt.Errorf("registrator URL: password of user %q is badly escaped", clip(c.Username))
			}
		}
	}
	if authority == "" {
		return c, fmt.Errorf("registrator URL: no endpoint: want host:port[,host:port]")
	}
	for _, ep := range strings.Split(authority, ",") {
		norm, err := parseEndpoint(ep)
		if err != nil {
			return c, fmt.Errorf("registrator URL: endpoint %q: %w", clip(ep), err)
		}
		c.Endpoints = append(c.Endpoints, norm)
	}
	prefix, err := url.PathUnescape(path)
	if err != nil {
		return c, fmt.Errorf("registrator URL: prefix %q is badly escaped", clip(path))
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		c.Prefix = "/" + prefix
	}
	if strings.Contains(c.Prefix, "//") {
		return c, fmt.Errorf("registrator URL: prefix %q has an empty path segment", clip(c.Prefix))
	}
	return c, nil
}

func parseEndpoint(ep string) (string, error) {
	if ep == "" {
		return "", fmt.Errorf("empty (a stray comma?)")
	}
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		// No port: "host" or "[::1]".
		if strings.Count(ep, ":") > 1 && !strings.HasPrefix(ep, "[") {
			return "", fmt.Errorf("an IPv6 address must be bracketed, e.g. [::1]:2379")
		}
		host, port = strings.TrimSuffix(strings.TrimPrefix(ep, "["), "]"), strconv.Itoa(DefaultPort)
	}
	if host == "" {
		return "", fmt.Errorf("missing host")
	}
	if strings.ContainsAny(host, "/@[] \t\r\n") {
		return "", fmt.Errorf("host %q has characters a host name cannot have", clip(host))
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || port[0] == '+' {
		return "", fmt.Errorf("port %q is not a number in 1..65535", clip(port))
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// clip bounds untrusted text quoted in errors and logs.
func clip(s string) string {
	const max = 120
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
