package lvm

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// memDisk is an in-memory io.ReaderAt/io.WriterAt.
type memDisk []byte

func (m memDisk) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m)) {
		return 0, errors.New("EOF")
	}
	n := copy(p, m[off:])
	if n < len(p) {
		return n, errors.New("EOF")
	}
	return n, nil
}

func (m memDisk) WriteAt(p []byte, off int64) (int, error) { return copy(m[off:], p), nil }

func fixture() Layout {
	return Layout{
		VG: "rootvg", VGID: "abcdefghijklmnopqrstuvwxyz012345", PVID: "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345",
		Device: "/dev/vda2", DeviceSize: 64 << 20, ExtentSize: 8192, PEStart: 2048, PECount: 15,
		LVs: []LVLayout{
			{Name: "rootlv", ID: "00000000000000000000000000000001", Segments: []Segment{
				{StartExtent: 0, ExtentCount: 2, Type: "striped", Stripes: []Stripe{{PV: "pv0", PE: 5}}},
				{StartExtent: 2, ExtentCount: 3, Type: "striped", Stripes: []Stripe{{PV: "pv0", PE: 0}}},
			}},
			{Name: "pool", ID: "00000000000000000000000000000002", Segments: []Segment{
				{StartExtent: 0, ExtentCount: 1, Type: "thin-pool"},
			}},
			{Name: "wide", ID: "00000000000000000000000000000003", Segments: []Segment{
				{StartExtent: 0, ExtentCount: 4, Type: "striped", StripeSize: 128, Stripes: []Stripe{{PV: "pv0", PE: 7}, {PV: "pv0", PE: 9}}},
			}},
		},
	}
}

func writeFixture(t *testing.T, l Layout) memDisk {
	t.Helper()
	d := make(memDisk, 2<<20)
	if err := WritePV(d, l); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRoundTrip: what WritePV writes, ReadPV and ParseVG read back, and
// Table maps segments to linear and striped targets at the right sectors.
func TestRoundTrip(t *testing.T) {
	d := writeFixture(t, fixture())
	pv, err := ReadPV(d)
	if err != nil {
		t.Fatal(err)
	}
	if pv.UUID != "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345" || pv.LabelSector != 1 || pv.DeviceSize != 64<<20 ||
		!reflect.DeepEqual(pv.Data, []Area{{1 << 20, 0}}) || !reflect.DeepEqual(pv.Metadata, []Area{{4096, 1<<20 - 4096}}) {
		t.Errorf("pv: %+v", pv)
	}
	vg, err := ParseVG(pv.Text)
	if err != nil {
		t.Fatal(err)
	}
	if vg.Name != "rootvg" || vg.ExtentSize != 8192 || len(vg.PVs) != 1 || vg.PVs[0].ID != pv.UUID || len(vg.LVs) != 3 || !vg.LVs[0].Visible() {
		t.Errorf("vg: %+v", vg)
	}
	dev := func(id string) (string, error) {
		if id != pv.UUID {
			return "", errors.New("unknown pv " + id)
		}
		return "254:2", nil
	}
	got, err := vg.Table("rootlv", dev)
	if err != nil {
		t.Fatal(err)
	}
	want := []Target{
		{Start: 0, Length: 2 * 8192, Type: "linear", Params: "254:2 " + itoa(2048+5*8192)},
		{Start: 2 * 8192, Length: 3 * 8192, Type: "linear", Params: "254:2 2048"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("table\n got %+v\nwant %+v", got, want)
	}
	got, err = vg.Table("wide", dev)
	if err != nil {
		t.Fatal(err)
	}
	want = []Target{{Start: 0, Length: 4 * 8192, Type: "striped", Params: "2 128 254:2 " + itoa(2048+7*8192) + " 254:2 " + itoa(2048+9*8192)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("striped table\n got %+v\nwant %+v", got, want)
	}
	if _, err := vg.Table("pool", dev); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), `logical volume rootvg/pool: segment1: type "thin-pool"`) {
		t.Errorf("thin pool: %v", err)
	}
	if _, err := vg.Table("home", dev); err == nil || !strings.Contains(err.Error(), "no such logical volume (the group has rootlv, pool, wide)") {
		t.Errorf("missing lv: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestPVCKAcceptsFixture: LVM's own pvck reads the fixture's headers and
// metadata without a CHECK complaint (an oracle for the format), and
// complains about a corrupted copy.
func TestPVCKAcceptsFixture(t *testing.T) {
	if _, err := exec.LookPath("pvck"); err != nil {
		t.Fatal("pvck is needed: apt-get install lvm2")
	}
	p := filepath.Join(t.TempDir(), "pv.img")
	if err := os.WriteFile(p, writeFixture(t, fixture()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, what := range []string{"headers", "metadata"} {
		out, err := exec.Command("pvck", "--dump", what, p).CombinedOutput()
		if err != nil || strings.Contains(string(out), "CHECK:") {
			t.Errorf("pvck --dump %s: %v\n%s", what, err, out)
		}
		if what == "metadata" && !strings.Contains(string(out), `stripes = [`) {
			t.Errorf("pvck shows no metadata:\n%s", out)
		}
	}
	d := writeFixture(t, fixture())
	d[4096+600] ^= 1
	os.WriteFile(p, d, 0o644)
	if out, _ := exec.Command("pvck", "--dump", "metadata", p).CombinedOutput(); !strings.Contains(string(out), "CHECK:") {
		t.Errorf("pvck took a corrupted copy:\n%s", out)
	}
}

// TestCorrupt: damage in each structure is refused with an error naming it.
func TestCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   int
		want string
	}{
		{"label crc", 512 + 100, "LVM label (sector 1): checksum"},
		{"label type", 512 + 24, "LVM label (sector 1): checksum"},
		{"mda header", 4096 + 30, "metadata area 1 at byte 4096: mda_header checksum"},
		{"metadata text", 4096 + 512 + 40, "metadata area 1 at byte 4096: metadata text checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := writeFixture(t, fixture())
			d[tc.at] ^= 0x20
			_, err := ReadPV(d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := ReadPV(make(memDisk, 8192)); !errors.Is(err, ErrNoLabel) {
		t.Errorf("blank disk: %v", err)
	}
}

// TestWrappedMetadata: text that runs past the end of the circular
// metadata area continues right after its header.
func TestWrappedMetadata(t *testing.T) {
	l := fixture()
	d := writeFixture(t, l)
	le := binary.LittleEndian
	m := d[4096 : 4096+512]
	size, n := le.Uint64(m[32:]), le.Uint64(m[48:])
	text := append([]byte(nil), d[4096+512:4096+512+int(n)]...)
	off := size - 100 // the first 100 bytes at the end, the rest wraps
	copy(d[4096+int(off):], text[:100])
	copy(d[4096+512:], text[100:])
	le.PutUint64(m[40:], off)
	le.PutUint32(m, crc(m[4:]))
	pv, err := ReadPV(d)
	if err != nil {
		t.Fatal(err)
	}
	if pv.Text != strings.TrimRight(string(text), "\x00") {
		t.Errorf("wrapped text differs")
	}
}

// TestParseErrors: malformed metadata is refused with the line and field.
func TestParseErrors(t *testing.T) {
	good := fixture().Text()
	for _, tc := range []struct{ name, text, want string }{
		{"unclosed", "vg {\n id = \"x\"\n", `section "vg" is not closed`},
		{"bad value", "vg {\n id = @\n}\n", "metadata line 2: id: unexpected '@'"},
		{"two vgs", "a { }\nb { }\n", "metadata holds 2 volume groups"},
		{"no extent size", strings.Replace(good, "extent_size = 8192", "", 1), "volume group rootvg: extent_size"},
		{"missing segment", strings.Replace(good, "segment_count = 2", "segment_count = 3", 1), "logical volume rootlv: segment3 is missing"},
		{"stripe pairs", strings.Replace(good, `"pv0", 5`, `"pv0"`, 1), "segment1: stripes must be a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseVG(tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	vg, err := ParseVG(strings.Replace(good, `"pv0", 0`, `"pv0", 14`, 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vg.Table("rootlv", func(string) (string, error) { return "1:1", nil }); err == nil || !strings.Contains(err.Error(), "segment2: extents 14-16 are past the end of pv0 (15 extents)") {
		t.Errorf("out of range: %v", err)
	}
}

func FuzzReadPV(f *testing.F) {
	d := make(memDisk, 2<<20)
	WritePV(d, fixture())
	f.Add([]byte(d[:8192]))
	f.Fuzz(func(t *testing.T, head []byte) {
		disk := make(memDisk, 2<<20)
		copy(disk, head)
		if pv, err := ReadPV(disk); err == nil && pv.Text != "" {
			if vg, err := ParseVG(pv.Text); err == nil {
				for _, lv := range vg.LVs {
					vg.Table(lv.Name, func(string) (string, error) { return "1:1", nil })
				}
			}
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	f.Add(fixture().Text())
	f.Add("a { b = [1, \"x\", ] c { } }")
	f.Fuzz(func(t *testing.T, s string) {
		ParseConfig(s)
		ParseVG(s)
	})
}
