package distros

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"imagebuilder/overlay"
)

// OSRelease is the parsed /etc/os-release of a base.
type OSRelease map[string]string

// ParseOSRelease reads os-release(5) syntax: KEY=value, values optionally quoted.
func ParseOSRelease(data []byte) OSRelease {
	out := OSRelease{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		out[k] = v
	}
	return out
}

// Pretty names the base for messages.
func (o OSRelease) Pretty() string {
	if p := o["PRETTY_NAME"]; p != "" {
		return p
	}
	return strings.TrimSpace(o["ID"] + " " + o["VERSION_ID"])
}

// Profile is one distribution family.
type Profile interface {
	// Name is the family name ("debian").
	Name() string
	// Supports reports whether the profile handles this release, and if not why.
	Supports(o OSRelease) (bool, string)
	// Fixup prepares the tree to boot as a cluster host.
	Fixup(t *overlay.Tree, o OSRelease) error
}

// Profiles lists the families imagebuilder knows, in detection order.
func Profiles() []Profile { return []Profile{Debian{}} }

// Detect reads the tree's os-release and returns its profile, or an error
// that names the base and the families that are supported.
func Detect(t *overlay.Tree) (Profile, OSRelease, error) {
	data, err := t.ReadFile("etc/os-release")
	if err != nil {
		data, err = t.ReadFile("usr/lib/os-release")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("detecting distribution: the base has no /etc/os-release or /usr/lib/os-release (is it a root filesystem?)")
	}
	o := ParseOSRelease(data)
	var names, why []string
	for _, p := range Profiles() {
		ok, reason := p.Supports(o)
		if ok {
			return p, o, nil
		}
		names = append(names, p.Name())
		if reason != "" {
			why = append(why, p.Name()+": "+reason)
		}
	}
	msg := fmt.Sprintf("unsupported base distribution %q (ID=%s VERSION_ID=%s); supported families: %s",
		o.Pretty(), o["ID"], o["VERSION_ID"], strings.Join(names, ", "))
	if len(why) > 0 {
		msg += " (" + strings.Join(why, "; ") + ")"
	}
	return nil, o, fmt.Errorf("%s", msg)
}
