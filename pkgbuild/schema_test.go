package pkgbuild

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

const schemaFile = "schema/buildinfo.schema.json"

func loadSchema(t *testing.T) (*jsonschema.Schema, map[string]any) {
	t.Helper()
	s, raw, err := compileSchema()
	if err != nil {
		t.Fatal(err)
	}
	return s, raw
}

// compileSchema compiles the published schema, which is checked against the
// 2020-12 meta-schema on the way.
func compileSchema() (*jsonschema.Schema, map[string]any, error) {
	b, err := os.ReadFile(schemaFile)
	if err != nil {
		return nil, nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", schemaFile, err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("buildinfo.schema.json", doc); err != nil {
		return nil, nil, err
	}
	s, err := c.Compile("buildinfo.schema.json")
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", schemaFile, err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, nil, err
	}
	return s, raw, nil
}

func validate(t *testing.T, s *jsonschema.Schema, data string) error {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	return s.Validate(v)
}

func keys(m any) []string {
	var out []string
	for k := range m.(map[string]any) {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedFields(v any) []string {
	f := JSONFields(reflect.TypeOf(v))
	sort.Strings(f)
	return f
}

// TestSchemaMatchesStruct: the schema names exactly the fields the loader
// accepts, with the same enums and reserved names.
func TestSchemaMatchesStruct(t *testing.T) {
	_, raw := loadSchema(t)
	if got, want := keys(raw["properties"]), sortedFields(BuildInfo{}); !slices.Equal(got, want) {
		t.Errorf("schema properties %v, BuildInfo json fields %v", got, want)
	}
	source := raw["$defs"].(map[string]any)["source"].(map[string]any)
	if got, want := keys(source["properties"]), sortedFields(Source{}); !slices.Equal(got, want) {
		t.Errorf("schema source properties %v, Source json fields %v", got, want)
	}
	var kinds []string
	for _, k := range source["properties"].(map[string]any)["kind"].(map[string]any)["enum"].([]any) {
		kinds = append(kinds, k.(string))
	}
	sort.Strings(kinds)
	if want := []string{KindDir, KindGit, KindGoModule, KindURL, KindURLExtract}; !slices.Equal(kinds, want) {
		t.Errorf("schema kinds %v, want %v", kinds, want)
	}
	units := raw["properties"].(map[string]any)["units"].(map[string]any)
	var roles []string
	for _, r := range units["additionalProperties"].(map[string]any)["items"].(map[string]any)["enum"].([]any) {
		roles = append(roles, r.(string))
	}
	sort.Strings(roles)
	if want := sortedKeys(validRoles); !slices.Equal(roles, want) {
		t.Errorf("schema roles %v, want %v", roles, want)
	}
	env := raw["properties"].(map[string]any)["environment"].(map[string]any)["propertyNames"].(map[string]any)
	var reserved []string
	for _, r := range env["not"].(map[string]any)["anyOf"].([]any)[0].(map[string]any)["enum"].([]any) {
		reserved = append(reserved, r.(string))
	}
	sort.Strings(reserved)
	if want := sortedKeys(reservedEnv); !slices.Equal(reserved, want) {
		t.Errorf("schema reserved environment %v, loader %v", reserved, want)
	}
}

// TestSchemaAgreesWithLoader runs documents through both the schema and
// LoadDefinition: both accept or both refuse.
func TestSchemaAgreesWithLoader(t *testing.T) {
	s, _ := loadSchema(t)
	tests := []struct {
		name, doc string
		ok        bool
	}{
		{"empty", `{}`, true},
		{"everything", `{"sources": {"a": {"kind": "dir", "path": "src"}, "b": {"kind": "url", "url": "http://127.0.0.1/x", "sha256": "` + okSHA + `"},
		  "c": {"kind": "url_extract", "url": "file:///x.tar", "sha256": "` + okSHA + `"}, "d": {"kind": "git", "url": "../repo", "commit": "` + strings.Repeat("a", 40) + `"},
		  "e": {"kind": "go_module", "module": "example.com/x/v2", "version": "v2.0.1", "go_sum": "go.sum", "packages": ["example.com/x/v2/cmd/x"]}},
		  "requires": ["q"], "environment": {"X": "1"}, "network": true, "state_directory": true, "username": ["svc"], "units": {"p.service": ["master", "agent_public"], "p.timer": []}}`, true},
		{"unknown field", `{"sorces": {}}`, false},
		{"capitalised field", `{"Sources": {}}`, false},
		{"capitalised source field", `{"sources": {"a": {"Kind": "dir", "path": "src"}}}`, false},
		{"unknown kind", `{"sources": {"a": {"kind": "svn", "url": "x"}}}`, false},
		{"no kind", `{"sources": {"a": {"path": "src"}}}`, false},
		{"url without sha256", `{"sources": {"a": {"kind": "url", "url": "http://x"}}}`, false},
		{"upper-case sha256", `{"sources": {"a": {"kind": "url", "url": "http://x", "sha256": "` + strings.ToUpper(okSHA) + `"}}}`, false},
		{"git branch", `{"sources": {"a": {"kind": "git", "url": "/r", "commit": "main"}}}`, false},
		{"dir with url", `{"sources": {"a": {"kind": "dir", "path": "src", "url": "http://x"}}}`, false},
		{"dir absolute", `{"sources": {"a": {"kind": "dir", "path": "/etc"}}}`, false},
		{"go_module latest", `{"sources": {"a": {"kind": "go_module", "module": "example.com/x", "version": "latest", "go_sum": "go.sum"}}}`, false},
		{"go_module without go_sum", `{"sources": {"a": {"kind": "go_module", "module": "example.com/x", "version": "v1.0.0"}}}`, false},
		{"bad source name", `{"sources": {"a/b": {"kind": "dir", "path": "src"}}}`, false},
		{"requires twice", `{"requires": ["q", "q"]}`, false},
		{"requires bad name", `{"requires": ["Q"]}`, false},
		{"requires double dash", `{"requires": ["a--b"]}`, false},
		{"reserved env", `{"environment": {"PKG_ID": "x"}}`, false},
		{"path env", `{"environment": {"OTHER_PATH": "x"}}`, false},
		{"env not a string", `{"environment": {"X": 1}}`, false},
		{"network not bool", `{"network": "yes"}`, false},
		{"bad user", `{"username": ["Root"]}`, false},
		{"user twice", `{"username": ["svc", "svc"]}`, false},
		{"bad role", `{"units": {"p.service": ["worker"]}}`, false},
		{"role twice", `{"units": {"p.service": ["master", "master"]}}`, false},
		{"bad unit name", `{"units": {"p.conf": []}}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			schemaErr := validate(t, s, tc.doc)
			r := newRepo(t)
			r.pkg("q", `{}`, "true\n", nil)
			r.pkg("p", tc.doc, "true\n", map[string]string{"src/f": "x", "go.sum": ""})
			_, loadErr := LoadDefinition(r.root, filepath.Join(r.root, "packages"), "p")
			if (schemaErr == nil) != tc.ok || (loadErr == nil) != tc.ok {
				t.Errorf("want ok=%v; schema: %v; loader: %v", tc.ok, schemaErr, loadErr)
			}
		})
	}
}

// TestPackagesMatchSchema validates every packages/*/buildinfo.json.
func TestPackagesMatchSchema(t *testing.T) {
	s, _ := loadSchema(t)
	files, err := filepath.Glob("../packages/*/buildinfo.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no ../packages/*/buildinfo.json: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate(t, s, string(b)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
