package pkgbuild

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadDefinition: LoadDefinition never panics on any buildinfo.json, and
// what it accepts the published schema accepts too.
func FuzzLoadDefinition(f *testing.F) {
	seeds, _ := filepath.Glob("../packages/*/buildinfo.json")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(string(b))
		}
	}
	for _, s := range []string{`{}`, `{"sources": {"a": {"kind": "dir", "path": "src"}}}`, `{"requires": ["q"], "units": {"x.service": ["master"]}}`,
		`{"sources": {"g": {"kind": "git", "url": "/r", "commit": "` + strings.Repeat("a", 40) + `"}}}`, `{"environment": {"A": "b"}, "username": ["u"]}`} {
		f.Add(s)
	}
	schema, _, err := compileSchema()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		r := newRepo(t)
		r.pkg("q", `{}`, "true\n", nil)
		r.pkg("p", doc, "true\n", map[string]string{"src/f": "x", "go.sum": ""})
		_, err := LoadDefinition(r.root, filepath.Join(r.root, "packages"), "p")
		if err != nil {
			return
		}
		if serr := validate(t, schema, doc); serr != nil {
			t.Errorf("the loader accepts %s, the schema refuses it: %v", doc, serr)
		}
	})
}
