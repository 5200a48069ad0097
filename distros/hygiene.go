package distros

import (
	"fmt"
	"path"
	"strings"

	"imagebuilder/overlay"
)

// Hygiene makes an image safe to boot many times: an empty machine-id (each
// host makes its own, without triggering first-boot prompts), no SSH host
// keys, no package lists, caches or logs of the build.
func Hygiene(t *overlay.Tree) error {
	if err := t.WriteFile("etc/machine-id", nil, 0o444, 0, 0); err != nil {
		return fmt.Errorf("hygiene: machine-id: %w", err)
	}
	var drop []string
	for p, e := range t.Entries {
		switch {
		case strings.HasPrefix(p, "etc/ssh/ssh_host_") && e.Kind != overlay.KindDir:
			drop = append(drop, p)
		case path.Dir(p) == "var/lib/apt/lists" && e.Kind == overlay.KindFile && path.Base(p) != "lock":
			drop = append(drop, p)
		case path.Dir(p) == "var/cache/apt" && strings.HasSuffix(p, ".bin"):
			drop = append(drop, p)
		case p == "var/lib/dbus/machine-id" || p == "etc/hostname":
			drop = append(drop, p)
		}
	}
	for _, p := range drop {
		if err := t.Remove(p); err != nil {
			return fmt.Errorf("hygiene: removing %s: %w", p, err)
		}
	}
	return nil
}
