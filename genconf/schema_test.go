package genconf

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestSchemaMatchesConfig keeps schema/config.schema.json, schema/README.md
// and the Config struct in agreement: same keys, same JSON types, same
// required keys, and a README section per key.
func TestSchemaMatchesConfig(t *testing.T) {
	raw, err := os.ReadFile("schema/config.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Required             []string `json:"required"`
		AdditionalProperties bool     `json:"additionalProperties"`
		Properties           map[string]struct {
			Type        string `json:"type"`
			Description string `json:"description"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatalf("schema: %v", err)
	}
	if schema.AdditionalProperties {
		t.Error("schema must refuse unknown keys (additionalProperties: false), as genconf does")
	}
	readme, err := os.ReadFile("schema/README.md")
	if err != nil {
		t.Fatal(err)
	}
	ct := reflect.TypeOf(Config{})
	keys := map[string]bool{}
	for i := 0; i < ct.NumField(); i++ {
		f := ct.Field(i)
		key := strings.Split(f.Tag.Get("yaml"), ",")[0]
		keys[key] = true
		p, ok := schema.Properties[key]
		if !ok {
			t.Errorf("Config.%s (%s) is missing from the schema", f.Name, key)
			continue
		}
		if want := jsonType(f.Type); p.Type != want {
			t.Errorf("%s: schema type %q, Go type %s wants %q", key, p.Type, f.Type, want)
		}
		if p.Description == "" {
			t.Errorf("%s: no description in the schema", key)
		}
		if !strings.Contains(string(readme), "### `"+key+"`") {
			t.Errorf("%s: no section \"### `%s`\" in schema/README.md", key, key)
		}
	}
	for key := range schema.Properties {
		if !keys[key] {
			t.Errorf("schema property %s is not a Config field", key)
		}
	}
	// The required keys are the ones Parse reports as "required" on an empty config.
	_, err = Parse("/c/config.yaml", []byte("prefix: /opt/x\n"), memSources(map[string]string{"/c/ip-detect": "#!/bin/sh\n"}, nil))
	var required []string
	for _, p := range err.(*Report).Problems {
		if p.Msg == "required" {
			required = append(required, p.Field)
		}
	}
	slices.Sort(required)
	got := slices.Clone(schema.Required)
	slices.Sort(got)
	if !slices.Equal(got, required) {
		t.Errorf("schema requires %v, genconf requires %v", got, required)
	}
}

func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Slice:
		return "array"
	case reflect.Map:
		return "object"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64:
		return "integer"
	}
	return t.String()
}
