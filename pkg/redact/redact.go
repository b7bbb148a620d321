// Package redact hides the credentials of a URL given on the command line
// or in the environment (MARATHON_URL, REGISTRATOR_URL), for error messages
// and logs. Both binaries' configuration and the Marathon source use it, so
// a password is hidden the same way wherever a bad URL is reported.
package redact

import "strings"

// URL hides the user info of raw, whether or not raw parses as a URL and
// whether or not it has a scheme ("alice:pass@host:8080" parses as scheme
// "alice" with an opaque part, which url.URL.Redacted would print whole).
//
// The user info is everything before the last '@' after the scheme: a
// password may hold '/', '?', '#' or '@' unescaped (people paste them), and
// a URL that holds such a password does not parse, so the authority cannot
// be trusted to end where a URL's would. The password (from the first ':')
// becomes "xxxxx" and the user name stays, as url.URL.Redacted has it; user
// info without a ':' is hidden whole, since a lone user name is often a
// token. Text with an '@' after the authority (a path or query) is
// over-redacted, never under.
func URL(raw string) string {
	rest, scheme := raw, ""
	if i := strings.Index(raw, "://"); i >= 0 {
		scheme, rest = raw[:i+3], raw[i+3:]
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return raw
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return scheme + "xxxxx@" + rest[at+1:]
	}
	return scheme + user + ":xxxxx@" + rest[at+1:]
}
