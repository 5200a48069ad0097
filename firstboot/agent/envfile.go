package agent

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Env is the content of a KEY=VALUE file (cluster.env, ip.env, the joined
// marker) in file order.
type Env struct {
	Keys   []string
	Values map[string]string
}

// Get returns the value of key and whether the file set it.
func (e Env) Get(key string) (string, bool) {
	v, ok := e.Values[key]
	return v, ok
}

// Environ returns the entries as KEY=VALUE strings, in file order, for
// exec.Cmd.Env.
func (e Env) Environ() []string {
	out := make([]string, 0, len(e.Keys))
	for _, k := range e.Keys {
		out = append(out, k+"="+e.Values[k])
	}
	return out
}

// ReadEnvFile reads and parses a KEY=VALUE file.
func ReadEnvFile(path string) (Env, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Env{}, fmt.Errorf("reading env file: %w", err)
	}
	env, err := ParseEnv(string(data))
	if err != nil {
		return Env{}, fmt.Errorf("parsing %s: %w", path, err)
	}
	return env, nil
}

// ParseEnv parses the subset of shell assignment syntax that is also valid
// for systemd's EnvironmentFile=: one KEY=VALUE per line, an optional
// "export " in front, blank lines and lines starting with # or ; ignored,
// values bare, in single quotes (literal) or in double quotes (where a
// backslash escapes " \ $ and `). A key set twice keeps its last value.
func ParseEnv(text string) (Env, error) {
	env := Env{Values: map[string]string{}}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, raw, ok := strings.Cut(line, "=")
		if !ok {
			return Env{}, fmt.Errorf("line %d: no '=' in %q", i+1, line)
		}
		if !validKey(key) {
			return Env{}, fmt.Errorf("line %d: invalid key %q", i+1, key)
		}
		val, err := parseValue(raw)
		if err != nil {
			return Env{}, fmt.Errorf("line %d: %s: %w", i+1, key, err)
		}
		if _, seen := env.Values[key]; !seen {
			env.Keys = append(env.Keys, key)
		}
		env.Values[key] = val
	}
	return env, nil
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func parseValue(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	var val string
	var rest string
	switch raw[0] {
	case '\'':
		end := strings.IndexByte(raw[1:], '\'')
		if end < 0 {
			return "", errors.New("unterminated single quote")
		}
		val, rest = raw[1:1+end], raw[2+end:]
	case '"':
		var b strings.Builder
		i := 1
		for ; i < len(raw); i++ {
			c := raw[i]
			if c == '"' {
				break
			}
			if c == '\\' && i+1 < len(raw) && strings.IndexByte("\"\\$`", raw[i+1]) >= 0 {
				i++
				c = raw[i]
			}
			b.WriteByte(c)
		}
		if i >= len(raw) {
			return "", errors.New("unterminated double quote")
		}
		val, rest = b.String(), raw[i+1:]
	default:
		return raw, nil
	}
	if strings.TrimSpace(rest) != "" {
		return "", fmt.Errorf("text after closing quote: %q", rest)
	}
	return val, nil
}

// FormatEnv renders key/value pairs as a KEY=VALUE file that ParseEnv, the
// shell and systemd all read back unchanged. Values are double-quoted only
// when needed. A value holding a newline or NUL cannot be represented.
func FormatEnv(pairs ...[2]string) (string, error) {
	var b strings.Builder
	for _, p := range pairs {
		if !validKey(p[0]) {
			return "", fmt.Errorf("invalid key %q", p[0])
		}
		if strings.ContainsAny(p[1], "\n\r\x00") {
			return "", fmt.Errorf("value of %s holds a newline or NUL", p[0])
		}
		b.WriteString(p[0])
		b.WriteByte('=')
		b.WriteString(quoteValue(p[1]))
		b.WriteByte('\n')
	}
	return b.String(), nil
}

func quoteValue(v string) string {
	bare := v != ""
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_./:,@%+-", c)) {
			bare = false
			break
		}
	}
	if bare {
		return v
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if strings.IndexByte("\"\\$`", v[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
	return b.String()
}
