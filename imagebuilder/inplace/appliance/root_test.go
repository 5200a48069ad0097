package main

import (
	"strings"
	"testing"
)

func TestChoose(t *testing.T) {
	part := candidate{node: "/dev/vda3", name: "/dev/vda3", fs: "xfs"}
	root := candidate{node: "/dev/ib-vg-rootlv", name: "vg/rootlv", fs: "xfs", dm: "ib-vg-rootlv"}
	alt := candidate{node: "/dev/ib-vg-alt", name: "vg/alt", fs: "ext4", dm: "ib-vg-alt"}
	other := candidate{node: "/dev/ib-vg2-rootlv", name: "vg2/rootlv", fs: "xfs", dm: "ib-vg2-rootlv"}
	for _, tc := range []struct {
		name  string
		cands []candidate
		want  string
		got   candidate
		err   string
	}{
		{"only one", []candidate{part}, "", part, ""},
		{"root name wins", []candidate{alt, root}, "", root, ""},
		{"chosen LV", []candidate{alt, root}, "vg/alt", alt, ""},
		{"chosen partition", []candidate{part, root}, "vda3", part, ""},
		{"ambiguous", []candidate{part, alt}, "", candidate{}, "several file systems hold an os-release: /dev/vda3 (xfs), vg/alt (ext4); choose the root with --in-place-root"},
		{"two root names", []candidate{root, other}, "", candidate{}, "several file systems hold an os-release: vg/rootlv (xfs), vg2/rootlv (xfs)"},
		{"missing choice", []candidate{root}, "vg/home", candidate{}, `root "vg/home" (ib.root=): no such file system with an os-release (found: vg/rootlv (xfs); tried: vg/home (ext4, no os-release))`},
		{"none", nil, "", candidate{}, "no XFS or ext4 root with an os-release on /dev/vda (tried vg/home (ext4, no os-release))"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := choose(tc.cands, tc.want, []string{"vg/home (ext4, no os-release)"})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got.name != tc.got.name || got.dm != tc.got.dm {
				t.Errorf("got %v, %v; want %v", got, err, tc.got)
			}
		})
	}
}
