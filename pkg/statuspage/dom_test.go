package statuspage

import (
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// The browser tests read the DOM Chromium built, parsed back with an HTML5
// parser: what a user's browser shows, element by element, rather than a
// string search in the markup.

func parseDOM(t *testing.T, s string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(s))
	if err != nil {
		t.Fatalf("parse DOM: %v", err)
	}
	return doc
}

// findAll returns the elements below n that ok accepts, in document order.
func findAll(n *html.Node, ok func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.ElementNode && ok(c) {
			out = append(out, c)
		}
		out = append(out, findAll(c, ok)...)
	}
	return out
}

func tag(name string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Data == name }
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasAttr(key, val string) func(*html.Node) bool {
	return func(n *html.Node) bool { return attr(n, key) == val }
}

func byID(t *testing.T, root *html.Node, id string) *html.Node {
	t.Helper()
	got := findAll(root, hasAttr("id", id))
	if len(got) != 1 {
		t.Fatalf("%d elements with id %q, want 1", len(got), id)
	}
	return got[0]
}

// text is n's text content with runs of white space collapsed.
func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// cells returns the text of each td of a row.
func cells(row *html.Node) []string {
	var out []string
	for _, td := range findAll(row, tag("td")) {
		out = append(out, text(td))
	}
	return out
}

// rows returns the rows of the table with id, each as its cells' texts by
// column header.
func rows(t *testing.T, root *html.Node, id string) []map[string]string {
	t.Helper()
	table := byID(t, root, id)
	var header []string
	for _, th := range findAll(table, tag("th")) {
		header = append(header, text(th))
	}
	var out []map[string]string
	for _, tr := range findAll(table, tag("tr")) {
		c := cells(tr)
		if len(c) == 0 {
			continue
		}
		if len(c) != len(header) {
			t.Fatalf("table %s: a row of %d cells under %d headers %q", id, len(c), len(header), header)
		}
		row := map[string]string{}
		for i, h := range header {
			row[h] = c[i]
		}
		out = append(out, row)
	}
	return out
}

// noActiveContent fails for any element that could run or load something:
// the page has none of its own, so any there came from input.
func noActiveContent(t *testing.T, root *html.Node) {
	t.Helper()
	for _, name := range []string{"script", "img", "iframe", "object", "embed", "svg", "link", "base"} {
		if got := findAll(root, tag(name)); len(got) > 0 {
			t.Errorf("the page has %d <%s> element(s): injected", len(got), name)
		}
	}
	for _, n := range findAll(root, func(*html.Node) bool { return true }) {
		for _, a := range n.Attr {
			if strings.HasPrefix(a.Key, "on") {
				t.Errorf("<%s> has an event handler attribute %s=%q: injected", n.Data, a.Key, a.Val)
			}
		}
	}
}
