package distros

import (
	"fmt"
	"path"

	"imagebuilder/overlay"
)

// unitDirs are where packages install systemd units, in order of preference.
var unitDirs = []string{"usr/lib/systemd/system", "lib/systemd/system"}

// findUnit returns the absolute on-host path of a unit file the base ships,
// or "" when it has none.
func findUnit(t *overlay.Tree, unit string) string {
	for _, d := range unitDirs {
		p := path.Join(d, unit)
		if isRegular(t, p) {
			return "/" + p
		}
	}
	return ""
}

// enableUnit links unit into /etc/systemd/system/<target>.wants, as
// `systemctl enable` would; the unit must be on the base.
func enableUnit(t *overlay.Tree, unit, target string) error {
	src := findUnit(t, unit)
	if src == "" {
		return fmt.Errorf("the base has no %s (looked in /usr/lib/systemd/system and /lib/systemd/system)", unit)
	}
	dir := "etc/systemd/system/" + target + ".wants"
	if err := t.MkdirAll(dir, 0o755, 0, 0); err != nil {
		return err
	}
	if err := t.Symlink(src, dir+"/"+unit); err != nil {
		return fmt.Errorf("enabling %s: %w", unit, err)
	}
	return nil
}

// maskUnit links /etc/systemd/system/<unit> to /dev/null, as `systemctl mask`.
func maskUnit(t *overlay.Tree, unit string) error {
	if err := t.MkdirAll("etc/systemd/system", 0o755, 0, 0); err != nil {
		return err
	}
	if err := t.Symlink("/dev/null", "etc/systemd/system/"+unit); err != nil {
		return fmt.Errorf("masking %s: %w", unit, err)
	}
	return nil
}
