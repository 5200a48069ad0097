package installer

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCmdline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Config
	}{
		{"console=ttyS0 quiet", Config{}},
		{"installer.disk=/dev/nvme0n1 installer.noreboot", Config{Disk: "nvme0n1", NoReboot: true}},
		{"installer.disk=vdb", Config{Disk: "vdb"}},
	} {
		if got := ParseCmdline(tc.in); got != tc.want {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestChooseDisk(t *testing.T) {
	disks := []Disk{
		{Name: "vdc", Size: 8 << 30, Empty: true},
		{Name: "vda", Size: 8 << 30, Empty: false},
		{Name: "vdb", Size: 1 << 20, Empty: true},
		{Name: "sda", Size: 8 << 30, Empty: true, ReadOnly: true},
	}
	for _, tc := range []struct {
		cfg     Config
		want    string
		errLike string
	}{
		{Config{}, "vdc", ""}, // sda read-only, vda not empty, vdb too small
		{Config{Disk: "vda"}, "vda", ""},
		{Config{Disk: "vdb"}, "", "holds 1048576 bytes"},
		{Config{Disk: "sdz"}, "", "installer.disk=sdz: no such disk"},
	} {
		d, err := ChooseDisk(append([]Disk(nil), disks...), tc.cfg, 1<<30)
		if tc.errLike != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errLike) {
				t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.errLike)
			}
			continue
		}
		if err != nil || d.Name != tc.want {
			t.Errorf("%+v: got %s %v, want %s", tc.cfg, d.Name, err, tc.want)
		}
	}
	if _, err := ChooseDisk([]Disk{{Name: "vda", Size: 8 << 30}}, Config{}, 1); err == nil || !strings.Contains(err.Error(), "no empty disk") {
		t.Errorf("no empty disk: %v", err)
	}
}

func TestScanDisks(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	mk := func(name, size, ro string, content []byte) {
		os.MkdirAll(filepath.Join(sys, name), 0o755)
		os.WriteFile(filepath.Join(sys, name, "size"), []byte(size+"\n"), 0o644)
		os.WriteFile(filepath.Join(sys, name, "ro"), []byte(ro+"\n"), 0o644)
		os.WriteFile(filepath.Join(dev, name), content, 0o644)
	}
	mk("vda", "16384", "0", append(make([]byte, 510), 0x55, 0xaa))
	mk("vdb", "16384", "0", make([]byte, 8192))
	mk("loop0", "16384", "0", nil)
	mk("sr0", "16384", "1", nil)
	disks, err := ScanDisks(sys, dev)
	if err != nil {
		t.Fatal(err)
	}
	if len(disks) != 2 || disks[0].Name != "vda" || disks[0].Empty || !disks[1].Empty || disks[1].Size != 16384*512 {
		t.Errorf("disks: %+v", disks)
	}
}

type memDisk struct{ b []byte }

func (m *memDisk) WriteAt(p []byte, off int64) (int, error) {
	if need := int(off) + len(p); need > len(m.b) {
		m.b = append(m.b, make([]byte, need-len(m.b))...)
	}
	return copy(m.b[off:], p), nil
}

func TestWriteAndCompare(t *testing.T) {
	img := append(bytes.Repeat([]byte("host image "), 1<<20), make([]byte, 9<<20)...)
	d := memDisk{b: bytes.Repeat([]byte{0xff}, len(img))} // not blank: zeroing must really zero
	synced, zeroed := false, int64(0)
	zero := func(off, n int64) error {
		zeroed += n
		copy(d.b[off:off+n], make([]byte, n))
		return nil
	}
	n, err := Write(&d, zero, func() error { synced = true; return nil }, bytes.NewReader(img))
	if err != nil || n != int64(len(img)) || !synced || zeroed < 4<<20 {
		t.Fatalf("write: %d %v synced=%v zeroed=%d", n, err, synced, zeroed)
	}
	if m, err := Compare(bytes.NewReader(d.b), bytes.NewReader(img)); err != nil || m != n {
		t.Errorf("compare of a good write: %d %v", m, err)
	}
	d.b[12345] ^= 1
	if _, err := Compare(bytes.NewReader(d.b), bytes.NewReader(img)); err == nil || !strings.Contains(err.Error(), "differs from the image at byte 12345") {
		t.Errorf("compare of a corrupted disk: %v", err)
	}
}
