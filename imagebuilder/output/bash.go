package output

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// InstallScript is the name genconf gives the bash-path installer, written
// next to the cluster bundle.
const InstallScript = "install.sh"

// WriteBashExport copies the cluster bundle and the install.sh beside it
// into dir (NAME.bash): everything the bash path needs on a running host.
// It returns the written files.
func WriteBashExport(dir, bundle string) ([]string, error) {
	script := filepath.Join(filepath.Dir(bundle), InstallScript)
	if _, err := os.Stat(script); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("bash export: no %s next to the bundle %s: make the cluster bundle with a genconf that writes install.sh, or drop --format bash", InstallScript, bundle)
	} else if err != nil {
		return nil, fmt.Errorf("bash export: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []string
	for _, f := range []struct {
		src  string
		mode os.FileMode
	}{{bundle, 0o644}, {script, 0o755}} {
		dst := filepath.Join(dir, filepath.Base(f.src))
		if err := copyFileAtomic(f.src, dst); err != nil {
			return nil, fmt.Errorf("bash export: %w", err)
		}
		if err := os.Chmod(dst, f.mode); err != nil {
			return nil, err
		}
		out = append(out, dst)
	}
	return out, nil
}
