package lvm

import (
	"fmt"
	"strconv"
	"strings"
)

// Section is a parsed block of LVM's text configuration format: values
// (int64, string, []any) and subsections by name, in file order.
type Section struct {
	Name   string
	Values map[string]any
	Subs   []*Section
}

// Sub returns the subsection called name, or nil.
func (s *Section) Sub(name string) *Section {
	for _, c := range s.Subs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Int returns the integer value key.
func (s *Section) Int(key string) (int64, error) {
	v, ok := s.Values[key]
	if !ok {
		return 0, fmt.Errorf("%s: %s is missing", s.Name, key)
	}
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("%s: %s is %v, not a number", s.Name, key, v)
	}
	return n, nil
}

// Str returns the string value key.
func (s *Section) Str(key string) (string, error) {
	v, ok := s.Values[key]
	if !ok {
		return "", fmt.Errorf("%s: %s is missing", s.Name, key)
	}
	str, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s: %s is %v, not a string", s.Name, key, v)
	}
	return str, nil
}

// Flags returns a list-of-strings value (status = ["READ", "WRITE"]); a
// missing key is an empty list.
func (s *Section) Flags(key string) []string {
	l, _ := s.Values[key].([]any)
	var out []string
	for _, v := range l {
		if str, ok := v.(string); ok {
			out = append(out, str)
		}
	}
	return out
}

type parser struct {
	src  string
	pos  int
	line int
}

// ParseConfig parses LVM's text configuration format (the volume group
// metadata). Errors name the line.
func ParseConfig(src string) (*Section, error) {
	p := &parser{src: src, line: 1}
	root := &Section{Name: "metadata", Values: map[string]any{}}
	if err := p.body(root, 0); err != nil {
		return nil, fmt.Errorf("metadata line %d: %w", p.line, err)
	}
	return root, nil
}

const maxDepth = 16

func (p *parser) body(s *Section, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("sections nested deeper than %d", maxDepth)
	}
	for {
		p.skip()
		if p.pos >= len(p.src) {
			if depth > 0 {
				return fmt.Errorf("section %q is not closed", s.Name)
			}
			return nil
		}
		if p.src[p.pos] == '}' {
			if depth == 0 {
				return fmt.Errorf("unexpected }")
			}
			p.pos++
			return nil
		}
		name := p.ident()
		if name == "" {
			return fmt.Errorf("unexpected %q", p.src[p.pos])
		}
		p.skip()
		switch {
		case p.eat('{'):
			sub := &Section{Name: name, Values: map[string]any{}}
			if err := p.body(sub, depth+1); err != nil {
				return err
			}
			s.Subs = append(s.Subs, sub)
		case p.eat('='):
			v, err := p.value(true)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			s.Values[name] = v
		default:
			return fmt.Errorf("%s: expected = or {", name)
		}
	}
}

func (p *parser) skip() {
	for p.pos < len(p.src) {
		switch c := p.src[p.pos]; {
		case c == '\n':
			p.line++
			p.pos++
		case c == ' ' || c == '\t' || c == '\r' || c == 0:
			p.pos++
		case c == '#':
			for p.pos < len(p.src) && p.src[p.pos] != '\n' {
				p.pos++
			}
		default:
			return
		}
	}
}

func (p *parser) eat(c byte) bool {
	if p.pos < len(p.src) && p.src[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

func identChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_-.+/", c) >= 0
}

func (p *parser) ident() string {
	start := p.pos
	for p.pos < len(p.src) && identChar(p.src[p.pos]) {
		p.pos++
	}
	return p.src[start:p.pos]
}

func (p *parser) value(arrayOK bool) (any, error) {
	p.skip()
	if p.pos >= len(p.src) {
		return nil, fmt.Errorf("missing value")
	}
	switch c := p.src[p.pos]; {
	case c == '"':
		p.pos++
		var b strings.Builder
		for {
			if p.pos >= len(p.src) || p.src[p.pos] == '\n' {
				return nil, fmt.Errorf("string not closed")
			}
			c := p.src[p.pos]
			p.pos++
			if c == '"' {
				return b.String(), nil
			}
			if c == '\\' && p.pos < len(p.src) {
				c = p.src[p.pos]
				p.pos++
			}
			b.WriteByte(c)
		}
	case c == '[' && arrayOK:
		p.pos++
		var out []any
		for {
			p.skip()
			if p.eat(']') {
				return out, nil
			}
			if len(out) > 0 && !p.eat(',') {
				return nil, fmt.Errorf("expected , or ] in list")
			}
			p.skip()
			if len(out) > 0 && p.eat(']') {
				return out, nil
			}
			v, err := p.value(false)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
	case c == '-' || c >= '0' && c <= '9':
		start := p.pos
		p.pos++
		for p.pos < len(p.src) && (p.src[p.pos] >= '0' && p.src[p.pos] <= '9' || p.src[p.pos] == '.') {
			p.pos++
		}
		text := p.src[start:p.pos]
		if strings.Contains(text, ".") {
			f, err := strconv.ParseFloat(text, 64)
			if err != nil {
				return nil, fmt.Errorf("number %q: %w", text, err)
			}
			return f, nil
		}
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("number %q: %w", text, err)
		}
		return n, nil
	}
	return nil, fmt.Errorf("unexpected %q", p.src[p.pos])
}
