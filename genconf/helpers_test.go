package genconf

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"io/fs"
	"path"
	"strings"
	"testing"
	"testing/fstest"
)

// memSources serves files from memory: a name starting with "-x " in files is
// stored without the executable bit (e.g. "-x /c/ip-detect").
func memSources(files map[string]string, env map[string]string) Sources {
	m := fstest.MapFS{}
	for name, data := range files {
		mode := fs.FileMode(0o755)
		if n, ok := strings.CutPrefix(name, "-x "); ok {
			name, mode = n, 0o644
		}
		m[strings.TrimPrefix(path.Clean(name), "/")] = &fstest.MapFile{Data: []byte(data), Mode: mode}
	}
	rel := func(p string) string { return strings.TrimPrefix(path.Clean(p), "/") }
	return Sources{
		ReadFile: func(p string) ([]byte, error) { return fs.ReadFile(m, rel(p)) },
		Stat:     func(p string) (fs.FileInfo, error) { return fs.Stat(m, rel(p)) },
		LookupEnv: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		},
	}
}

func jsonEncode(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
