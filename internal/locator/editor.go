package locator

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// editor collects replacements of byte ranges of a YAML file and applies
// them at once, so that positions read from the parse stay valid.
type editor struct {
	src   []byte
	edits []edit
	err   error
}

type edit struct {
	start, end int
	text       string
}

// offset is the byte offset of a 1-based line and column (columns count
// characters).
func (e *editor) offset(line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(e.src[off:], '\n')
		if i < 0 {
			return len(e.src)
		}
		off += i + 1
	}
	for c := 1; c < col && off < len(e.src); c++ {
		_, n := utf8.DecodeRune(e.src[off:])
		off += n
	}
	return off
}

// set replaces scalar n's text with v, in n's quoting style.
func (e *editor) set(n *yaml.Node, v string) {
	start := e.offset(n.Line, n.Column)
	end, err := e.scalarEnd(n, start)
	if err != nil {
		e.err = err
		return
	}
	e.edits = append(e.edits, edit{start, end, quote(n.Style, v)})
}

func (e *editor) scalarEnd(n *yaml.Node, start int) (int, error) {
	s := e.src
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0:
		for i := start + 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '"':
				return i + 1, nil
			}
		}
	case n.Style&yaml.SingleQuotedStyle != 0:
		for i := start + 1; i < len(s); i++ {
			if s[i] == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					i++
					continue
				}
				return i + 1, nil
			}
		}
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 || strings.Contains(n.Value, "\n"):
		return 0, fmt.Errorf("line %d: a multi-line scalar cannot hold an image reference", n.Line)
	default:
		// A one-line plain scalar is its text: no escapes, no quotes.
		if end := start + len(n.Value); end <= len(s) && string(s[start:end]) == n.Value {
			return end, nil
		}
		return 0, fmt.Errorf("line %d: cannot find %q at column %d", n.Line, n.Value, n.Column)
	}
	return 0, fmt.Errorf("line %d: unterminated quoted scalar", n.Line)
}

// setKey sets key in block mapping m to v, adding the key after the
// mapping's last line when it is missing.
func (e *editor) setKey(m *yaml.Node, key, v string) error {
	if n := lookup(m, key); n != nil {
		e.set(n, v)
		return e.err
	}
	if m.Style&yaml.FlowStyle != 0 || len(m.Content) == 0 {
		return fmt.Errorf("line %d: the entry is written in flow style ({...}); add %s: by hand once, and converge keeps it current", m.Line, key)
	}
	indent := strings.Repeat(" ", m.Content[0].Column-1)
	at := e.offset(lastLine(m)+1, 1)
	text := indent + key + ": " + quote(0, v) + "\n"
	if at == len(e.src) && len(e.src) > 0 && e.src[len(e.src)-1] != '\n' {
		text = "\n" + text
	}
	e.edits = append(e.edits, edit{at, at, text})
	return nil
}

// lastLine is the last line n's content reaches.
func lastLine(n *yaml.Node) int {
	last := n.Line
	for _, c := range n.Content {
		if l := lastLine(c); l > last {
			last = l
		}
	}
	return last
}

func (e *editor) apply() ([]byte, error) {
	if e.err != nil {
		return nil, e.err
	}
	sort.SliceStable(e.edits, func(i, j int) bool { return e.edits[i].start < e.edits[j].start })
	var out bytes.Buffer
	pos := 0
	for _, ed := range e.edits {
		if ed.start < pos {
			return nil, fmt.Errorf("overlapping edits at byte %d", ed.start)
		}
		out.Write(e.src[pos:ed.start])
		out.WriteString(ed.text)
		pos = ed.end
	}
	out.Write(e.src[pos:])
	return out.Bytes(), nil
}

// quote writes v in style, or plain when it reads back as the same
// string, else double-quoted: a tag like 1.50 written plain would be
// read as the number 1.5.
func quote(style yaml.Style, v string) string {
	switch {
	case style&yaml.DoubleQuotedStyle != 0:
		return doubleQuote(v)
	case style&yaml.SingleQuotedStyle != 0:
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("k: "+v+"\n"), &n); err == nil && len(n.Content) == 1 {
		if val := lookup(n.Content[0], "k"); val != nil && val.Kind == yaml.ScalarNode && val.Tag == "!!str" && val.Value == v && val.Style == 0 {
			return v
		}
	}
	return doubleQuote(v)
}

func doubleQuote(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}
