package disk

import (
	"strings"
	"testing"

	"imagebuilder/overlay"
)

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"6.1.0-13-amd64", "6.1.0-9-amd64", 1},
		{"6.1.0-9-amd64", "6.1.0-13-amd64", -1},
		{"6.1.0-13-amd64", "6.1.0-13-amd64", 0},
		{"6.10.0", "6.9.0", 1},
		{"5.14.0-362.el9.x86_64", "5.14.0-70.el9.x86_64", 1},
		{"6.1~rc1", "6.1", -1},
		{"6.1", "6.1.1", -1},
		{"0-rescue-abc", "5.14.0", -1},
		{"6.1.0-007", "6.1.0-7", 0},
	} {
		t.Run(tc.a+"_vs_"+tc.b, func(t *testing.T) {
			if got := compareVersions(tc.a, tc.b); got != tc.want {
				t.Fatalf("compareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
			}
		})
	}
}

func TestFindKernel(t *testing.T) {
	type file struct{ p, data string }
	for _, tc := range []struct {
		name  string
		files []file
		links [][2]string // target, path
		want  Kernel
		err   string
	}{
		{
			name:  "debian picks the newest",
			files: []file{{"boot/vmlinuz-6.1.0-9-amd64", "k"}, {"boot/initrd.img-6.1.0-9-amd64", "i"}, {"boot/vmlinuz-6.1.0-13-amd64", "k"}, {"boot/initrd.img-6.1.0-13-amd64", "i"}},
			want:  Kernel{Version: "6.1.0-13-amd64", Linux: "boot/vmlinuz-6.1.0-13-amd64", Initrd: "boot/initrd.img-6.1.0-13-amd64"},
		},
		{
			name:  "rhel initramfs naming",
			files: []file{{"boot/vmlinuz-5.14.0-362.el9.x86_64", "k"}, {"boot/initramfs-5.14.0-362.el9.x86_64.img", "i"}},
			want:  Kernel{Version: "5.14.0-362.el9.x86_64", Linux: "boot/vmlinuz-5.14.0-362.el9.x86_64", Initrd: "boot/initramfs-5.14.0-362.el9.x86_64.img"},
		},
		{
			name:  "initrd symlink is resolved",
			files: []file{{"boot/vmlinuz-6.1", "k"}, {"boot/real-initrd", "i"}},
			links: [][2]string{{"real-initrd", "boot/initrd.img-6.1"}},
			want:  Kernel{Version: "6.1", Linux: "boot/vmlinuz-6.1", Initrd: "boot/real-initrd"},
		},
		{
			name: "no kernel",
			err:  "the tree has no kernel",
		},
		{
			name:  "newest kernel without initrd",
			files: []file{{"boot/vmlinuz-6.1.0-9-amd64", "k"}, {"boot/initrd.img-6.1.0-9-amd64", "i"}, {"boot/vmlinuz-6.1.0-13-amd64", "k"}},
			err:   "kernel /boot/vmlinuz-6.1.0-13-amd64 has no initrd",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := overlay.NewTree(t.TempDir())
			for _, f := range tc.files {
				if err := tree.WriteFile(f.p, []byte(f.data), 0o644, 0, 0); err != nil {
					t.Fatal(err)
				}
			}
			for _, l := range tc.links {
				if err := tree.Symlink(l[0], l[1]); err != nil {
					t.Fatal(err)
				}
			}
			got, err := FindKernel(tree)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("FindKernel = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
