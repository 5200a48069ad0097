package agent

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseEnv(t *testing.T) {
	tests := []struct {
		name string
		text string
		want map[string]string
		keys []string
		err  string
	}{
		{name: "genconf style", text: "CLUSTER_NAME=demo\nMASTER_LIST=\"10.0.0.1 10.0.0.2\"\nJOIN_TIMEOUT=600\n",
			want: map[string]string{"CLUSTER_NAME": "demo", "MASTER_LIST": "10.0.0.1 10.0.0.2", "JOIN_TIMEOUT": "600"},
			keys: []string{"CLUSTER_NAME", "MASTER_LIST", "JOIN_TIMEOUT"}},
		{name: "comments and blanks", text: "# comment\n\n; other\n  A=1  \r\n",
			want: map[string]string{"A": "1"}, keys: []string{"A"}},
		{name: "export", text: "export A=1\n", want: map[string]string{"A": "1"}, keys: []string{"A"}},
		{name: "empty value", text: "A=\nB=\"\"\n", want: map[string]string{"A": "", "B": ""}, keys: []string{"A", "B"}},
		{name: "escapes", text: `A="x \"y\" \\ \$HOME \` + "`" + `z\n"`,
			want: map[string]string{"A": `x "y" \ $HOME ` + "`" + `z\n`}, keys: []string{"A"}},
		{name: "single quotes literal", text: `A='a "b" \$c'`, want: map[string]string{"A": `a "b" \$c`}, keys: []string{"A"}},
		{name: "last wins", text: "A=1\nB=2\nA=3\n", want: map[string]string{"A": "3", "B": "2"}, keys: []string{"A", "B"}},
		{name: "equals in value", text: "A=b=c\n", want: map[string]string{"A": "b=c"}, keys: []string{"A"}},
		{name: "no equals", text: "A\n", err: `line 1: no '='`},
		{name: "bad key", text: "1A=x\n", err: `invalid key "1A"`},
		{name: "key with dash", text: "A-B=x\n", err: `invalid key "A-B"`},
		{name: "unterminated", text: "A=\"abc\n", err: "unterminated double quote"},
		{name: "unterminated single", text: "A='abc\n", err: "unterminated single quote"},
		{name: "trailing text", text: "A=\"a\"b\n", err: "text after closing quote"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, err := ParseEnv(tc.text)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseEnv = %v, %v; want error containing %q", env, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEnv: %v", err)
			}
			if !reflect.DeepEqual(env.Values, tc.want) || !reflect.DeepEqual(env.Keys, tc.keys) {
				t.Errorf("ParseEnv = %v %v, want %v %v", env.Keys, env.Values, tc.keys, tc.want)
			}
		})
	}
}

func TestFormatEnv(t *testing.T) {
	tests := []struct {
		name  string
		pairs [][2]string
		want  string
		err   string
	}{
		{name: "bare", pairs: [][2]string{{"DETECTED_IP", "10.0.2.15"}, {"V6", "fd00::5"}}, want: "DETECTED_IP=10.0.2.15\nV6=fd00::5\n"},
		{name: "quoted", pairs: [][2]string{{"A", "a b"}, {"B", ""}, {"C", `$x"y`}}, want: "A=\"a b\"\nB=\"\"\nC=\"\\$x\\\"y\"\n"},
		{name: "newline", pairs: [][2]string{{"A", "a\nb"}}, err: "newline"},
		{name: "bad key", pairs: [][2]string{{"A B", "x"}}, err: "invalid key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FormatEnv(tc.pairs...)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("FormatEnv = %q, %v; want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("FormatEnv = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func FuzzParseEnv(f *testing.F) {
	f.Add("A=1\nB=\"x y\"\n# c\n", "value with \"quotes\" and $dollar")
	f.Add("A='x'", "")
	f.Fuzz(func(t *testing.T, text, value string) {
		if env, err := ParseEnv(text); err == nil {
			if len(env.Keys) != len(env.Values) {
				t.Fatalf("keys %v vs values %v", env.Keys, env.Values)
			}
		}
		// Whatever FormatEnv writes, ParseEnv reads back unchanged.
		out, err := FormatEnv([2]string{"K", value})
		if err != nil {
			return
		}
		env, err := ParseEnv(out)
		if err != nil {
			t.Fatalf("ParseEnv(FormatEnv(%q)) = %v", value, err)
		}
		if got := env.Values["K"]; got != value {
			t.Fatalf("round trip of %q gave %q (file %q)", value, got, out)
		}
	})
}
