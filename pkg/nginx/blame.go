package nginx

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/meltwater/proxymatic/pkg/services"
)

// Blame maps the errors `nginx -t` reported for cfg (checked at cfgPath) to
// the virtual hosts whose blocks they point at ("[emerg] ... in
// /run/nginx.conf:57"), so the reload agent can leave those out and apply
// the rest. A line belongs to the innermost enclosing block that belongs to
// a virtual host: its `upstream <host>` block, or a `server` block whose
// server_name names the host (locations inside count as the server's).
//
// nginx stops at its first error, so one check blames at most one virtual
// host; the caller checks again without it. The result maps each blamed
// virtual host's service to nginx's line about it; all is false when some
// error points at no virtual host (the http block, the default server, a
// message without a place), which leaving hosts out cannot fix.
func Blame(cfg []byte, cfgPath, msg string, vhosts []VHost) (blamed map[services.Key]string, all bool) {
	byHost := make(map[string]int, len(vhosts))
	for i := range vhosts {
		byHost[vhosts[i].Host] = i
	}
	var blocks []block // parsed only when an error has a place in cfg
	blamed = map[services.Key]string{}
	all = true
	errors := 0
	for _, line := range strings.Split(msg, "\n") {
		if !strings.Contains(line, "[emerg]") {
			continue
		}
		errors++
		text := emergText(line)
		m := placeRE.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil || (m[1] != cfgPath && filepath.Base(m[1]) != filepath.Base(cfgPath)) {
			all = false
			continue
		}
		n, _ := strconv.Atoi(m[2])
		if blocks == nil {
			blocks = parseBlocks(cfg)
		}
		i, ok := owner(blocks, n, byHost)
		if !ok {
			all = false
			continue
		}
		k := vhosts[i].Service
		if blamed[k] != "" {
			blamed[k] += "\n"
		}
		blamed[k] += text
	}
	if errors == 0 {
		all = false
	}
	return blamed, all
}

var (
	placeRE       = regexp.MustCompile(` in (\S+):(\d+)$`)
	emergPrefixRE = regexp.MustCompile(`^.*?\[emerg\] \d+#\d+: `)
)

func emergText(line string) string {
	return emergPrefixRE.ReplaceAllString(strings.TrimSpace(line), "")
}

// block is one { } block of an nginx config: its directive words, the lines
// it spans and, for a server block, the names of its server_name.
type block struct {
	words       []string
	first, last int
	names       []string
}

// owner returns the virtual host of the innermost block around line n that
// belongs to one.
func owner(blocks []block, n int, byHost map[string]int) (int, bool) {
	best, bestFirst := -1, -1
	for _, b := range blocks {
		if n < b.first || n > b.last || b.first < bestFirst {
			continue
		}
		i, ok := -1, false
		switch {
		case len(b.words) == 2 && b.words[0] == "upstream":
			i, ok = byHost[b.words[1]]
		case len(b.words) == 1 && b.words[0] == "server":
			for _, name := range b.names {
				if i, ok = byHost[name]; ok {
					break
				}
			}
		}
		if ok {
			best, bestFirst = i, b.first
		}
	}
	return best, best >= 0
}

// parseBlocks reads the block structure of an nginx config: words split on
// whitespace, ';' ends a directive, '{' and '}' open and close blocks, '#'
// starts a comment, quotes (with backslash escapes) hold any of these.
func parseBlocks(cfg []byte) []block {
	var (
		blocks []block
		open   []int // indexes into blocks
		words  []string
		word   strings.Builder
		inWord bool
		quote  byte
		line   = 1
		start  = 0 // line of the current directive's first word
	)
	endWord := func() {
		if inWord {
			if len(words) == 0 {
				start = line
			}
			words = append(words, word.String())
			word.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(cfg); i++ {
		c := cfg[i]
		if quote != 0 {
			switch {
			case c == '\\' && i+1 < len(cfg):
				word.WriteByte(cfg[i+1])
				i++
			case c == quote:
				quote = 0
			default:
				word.WriteByte(c)
			}
			if c == '\n' {
				line++
			}
			continue
		}
		switch c {
		case '\n', ' ', '\t', '\r':
			endWord()
			if c == '\n' {
				line++
			}
		case '#':
			if inWord {
				word.WriteByte(c)
				continue
			}
			for i < len(cfg) && cfg[i] != '\n' {
				i++
			}
			i-- // the newline is counted above
		case '"', '\'':
			if !inWord && len(words) == 0 {
				start = line
			}
			inWord, quote = true, c
		case ';':
			endWord()
			if len(words) > 0 && words[0] == "server_name" && len(open) > 0 {
				b := &blocks[open[len(open)-1]]
				b.names = append(b.names, words[1:]...)
			}
			words = words[:0]
		case '{':
			endWord()
			if len(words) == 0 {
				start = line
			}
			blocks = append(blocks, block{words: append([]string(nil), words...), first: start})
			open = append(open, len(blocks)-1)
			words = words[:0]
		case '}':
			endWord()
			words = words[:0]
			if len(open) > 0 {
				blocks[open[len(open)-1]].last = line
				open = open[:len(open)-1]
			}
		default:
			inWord = true
			word.WriteByte(c)
		}
	}
	for _, i := range open { // unclosed: to the end
		blocks[i].last = line
	}
	return blocks
}
