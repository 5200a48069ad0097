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

// Likes returns the ID_LIKE list.
func (o OSRelease) Likes() []string { return strings.Fields(o["ID_LIKE"]) }

// Major is VERSION_ID up to its first dot ("9.4" → "9").
func (o OSRelease) Major() string {
	v, _, _ := strings.Cut(o["VERSION_ID"], ".")
	return v
}

// Profile is one distribution family.
type Profile interface {
	// Name is the family name ("debian", "ubuntu", "rhel").
	Name() string
	// Supports reports whether the profile handles this release, and if not
	// (but the release belongs to the family) why.
	Supports(o OSRelease) (bool, string)
	// Fixup prepares the tree to boot as a cluster host.
	Fixup(t *overlay.Tree, o OSRelease) error
}

// Profiles lists the families imagebuilder knows, in detection order.
func Profiles() []Profile { return []Profile{Debian(), Ubuntu(), RHEL()} }

// ReadOSRelease reads the tree's /etc/os-release, or /usr/lib/os-release.
func ReadOSRelease(t *overlay.Tree) (OSRelease, error) {
	data, err := t.ReadFile("etc/os-release")
	if err != nil {
		data, err = t.ReadFile("usr/lib/os-release")
	}
	if err != nil {
		return nil, fmt.Errorf("detecting distribution: the base has no /etc/os-release or /usr/lib/os-release (is it a root filesystem?)")
	}
	return ParseOSRelease(data), nil
}

// Detect reads the tree's os-release and returns its profile, or an error
// that names what was found and the families that are supported.
func Detect(t *overlay.Tree) (Profile, OSRelease, error) {
	o, err := ReadOSRelease(t)
	if err != nil {
		return nil, nil, err
	}
	p, err := DetectRelease(o)
	return p, o, err
}

// DetectRelease picks the profile for an os-release.
func DetectRelease(o OSRelease) (Profile, error) {
	var why []string
	for _, p := range Profiles() {
		ok, reason := p.Supports(o)
		if ok {
			return p, nil
		}
		if reason != "" {
			why = append(why, p.Name()+": "+reason)
		}
	}
	msg := fmt.Sprintf("unsupported base distribution %q (ID=%q ID_LIKE=%q VERSION_ID=%q); supported families: %s",
		o.Pretty(), o["ID"], o["ID_LIKE"], o["VERSION_ID"], supportedList())
	if len(why) > 0 {
		msg += " (" + strings.Join(why, "; ") + ")"
	}
	return nil, fmt.Errorf("%s", msg)
}

func supportedList() string {
	var out []string
	for _, p := range Profiles() {
		if f, ok := p.(*Family); ok {
			out = append(out, f.Describe())
		} else {
			out = append(out, p.Name())
		}
	}
	return strings.Join(out, "; ")
}
