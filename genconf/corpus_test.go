package genconf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInvalidCorpus loads every config in testdata/invalid/. Each file says
// in "# want: TEXT" lines what its report must contain, and in
// "# secret: TEXT" lines a value the report must never show. Every problem
// must carry a hint.
func TestInvalidCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 25 {
		t.Fatalf("the corpus has %d configs, want at least 25", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var wants, secrets []string
			for _, line := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(line, "# want: "); ok {
					wants = append(wants, w)
				}
				if s, ok := strings.CutPrefix(line, "# secret: "); ok {
					secrets = append(secrets, s)
				}
			}
			if len(wants) == 0 {
				t.Fatalf("%s has no '# want:' line", f)
			}
			_, err = Load(f)
			var rep *Report
			if !errors.As(err, &rep) {
				t.Fatalf("want a Report, got %v", err)
			}
			msg := err.Error()
			for _, w := range wants {
				if !strings.Contains(msg, w) {
					t.Errorf("report lacks %q:\n%s", w, msg)
				}
			}
			for _, s := range secrets {
				if strings.Contains(msg, s) {
					t.Errorf("report shows the secret %q:\n%s", s, msg)
				}
			}
			for _, p := range rep.Problems {
				if p.Hint == "" {
					t.Errorf("problem %s: %s has no hint", p.Field, p.Msg)
				}
			}
		})
	}
}
