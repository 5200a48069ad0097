package genconf

import (
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// SecretsPath is where secrets land in the bundle (mode 0600).
const SecretsPath = "etc/secrets.env"

// Secret is one entry of config.yaml's secrets: a literal value, or
// {file: PATH} (relative to config.yaml) or {env: VARIABLE} so the value need
// not sit in config.yaml. The literal is never printed: Secret redacts itself
// in fmt, slog and JSON.
type Secret struct {
	Value SecretValue
	File  string
	Env   string
	bad   string // why the YAML node was not understood (no value in it)
}

// UnmarshalYAML takes a scalar or a {file|env} mapping. It never fails, so a
// secret's value cannot end up in a YAML error; Parse reports what is wrong.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		s.Value = SecretValue(n.Value)
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				s.bad = fmt.Sprintf("line %d: %q must be a string", v.Line, k.Value)
				return nil
			}
			switch k.Value {
			case "file":
				s.File = v.Value
			case "env":
				s.Env = v.Value
			default:
				s.bad = fmt.Sprintf("line %d: unknown key %q (a secret is a string, {file: PATH} or {env: VARIABLE})", k.Line, k.Value)
				return nil
			}
		}
		if (s.File == "") == (s.Env == "") {
			s.bad = fmt.Sprintf("line %d: give exactly one of file: or env:", n.Line)
		}
	default:
		s.bad = fmt.Sprintf("line %d: a secret is a string, {file: PATH} or {env: VARIABLE}", n.Line)
	}
	return nil
}

// SecretValue is a secret's text. It prints as [redacted] everywhere; use
// Reveal to get the text.
type SecretValue string

const redacted = "[redacted]"

// Reveal returns the secret text.
func (v SecretValue) Reveal() string { return string(v) }

// String redacts.
func (v SecretValue) String() string { return redacted }

// GoString redacts.
func (v SecretValue) GoString() string { return redacted }

// LogValue redacts.
func (v SecretValue) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON redacts.
func (v SecretValue) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalYAML redacts.
func (v SecretValue) MarshalYAML() (any, error) { return redacted, nil }

var (
	secretNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	// Secret text must survive bash `source` and systemd EnvironmentFile=
	// inside double quotes without escaping.
	secretBadChars = "\"\\$`\n\r\x00"
)

// minSecretLen is enforced for secrets whose name says they are tokens or
// passwords, the kind a short value makes guessable.
const minSecretLen = 16

func secrets(rep *Report, dir string, in map[string]Secret, src Sources) map[string]SecretValue {
	if len(in) == 0 {
		return nil
	}
	out := map[string]SecretValue{}
	for _, name := range sortedKeys(in) {
		s := in[name]
		field := "secrets." + name
		if !secretNameRE.MatchString(name) {
			rep.add(field, "%q is not a secret name", name)
			rep.hint("lowercase letters, digits and '_', starting with a letter (it becomes %s in %s)", strings.ToUpper(name), SecretsPath)
			continue
		}
		if s.bad != "" {
			rep.add(field, "%s", s.bad)
			rep.hint("e.g. join_token: {file: join-token.txt} keeps the value out of config.yaml")
			continue
		}
		val := string(s.Value)
		switch {
		case s.File != "":
			p := relTo(dir, s.File)
			data, err := src.ReadFile(p)
			if err != nil {
				rep.add(field, "cannot read the secret file %s: %v", p, unwrapPathErr(err))
				rep.hint("the path is relative to config.yaml's folder")
				continue
			}
			val = strings.TrimRight(string(data), "\n")
		case s.Env != "":
			v, ok := src.LookupEnv(s.Env)
			if !ok {
				rep.add(field, "environment variable %s is not set", s.Env)
				rep.hint("export %s before running genconf", s.Env)
				continue
			}
			val = v
		}
		switch {
		case val == "":
			rep.add(field, "is empty")
			rep.hint("set a value, or remove the secret")
			continue
		case strings.ContainsAny(val, secretBadChars):
			// Never echo the value: say only what kind of character is wrong.
			rep.add(field, "contains a quote, backslash, '$', backtick, newline or NUL (value redacted)")
			rep.hint("use printable characters such as base64 or hex (e.g. openssl rand -hex 24)")
			continue
		case len(val) < minSecretLen && (strings.Contains(name, "token") || strings.Contains(name, "password")):
			rep.add(field, "is %d characters long (value redacted); at least %d are needed", len(val), minSecretLen)
			rep.hint("generate one with: openssl rand -hex 24")
			continue
		}
		out[name] = SecretValue(val)
	}
	return out
}
