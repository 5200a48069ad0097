package disk

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestConvertIsReproducible: vmdk and vhd made twice from one raw disk with
// the same ids are the same bytes (qemu-img draws the VMDK CID and the VHD
// unique id at random and stamps the VHD with the clock); another seed
// gives other ids. The images still hold the raw disk's bytes, the VMDK
// descriptor names the file by its final name and the VHD footer's
// checksum is valid.
func TestConvertIsReproducible(t *testing.T) {
	needTool(t, "qemu-img", "qemu-utils")
	ctx := context.Background()
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(raw, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(raw, 16<<20); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(raw, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte("imagebuilder"), 1000), 3<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ids := ConvertIDs{Seed: "seed-1", SourceDateEpoch: 1700000000}
	for _, format := range []string{"vmdk", "vhd"} {
		t.Run(format, func(t *testing.T) {
			convert := func(sub string, ids ConvertIDs) []byte {
				out := filepath.Join(dir, sub, format, "host."+format)
				if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
					t.Fatal(err)
				}
				if _, err := DefaultTools().ConvertSum(ctx, raw, out, format, ids); err != nil {
					t.Fatal(err)
				}
				qf := map[string]string{"vmdk": "vmdk", "vhd": "vpc"}[format]
				if o, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", qf, raw, out).CombinedOutput(); err != nil {
					t.Errorf("qemu-img compare: %v\n%s", err, o)
				}
				if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*")); len(left) > 0 {
					t.Errorf("temporary files left: %v", left)
				}
				b, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			a, b, other := convert("a", ids), convert("b", ids), convert("c", ConvertIDs{Seed: "seed-2", SourceDateEpoch: ids.SourceDateEpoch})
			if !bytes.Equal(a, b) {
				t.Errorf("two conversions with the same ids differ")
			}
			if bytes.Equal(a, other) {
				t.Errorf("another seed gave the same bytes")
			}
			switch format {
			case "vmdk":
				if !bytes.Contains(a, []byte(`SPARSE "host.vmdk"`)) || bytes.Contains(a, []byte(".tmp-")) {
					t.Errorf("the descriptor does not name host.vmdk:\n%s", a[512:1024])
				}
			case "vhd":
				ft := a[len(a)-vhdFooterSize:]
				if got, want := binary.BigEndian.Uint32(ft[vhdChecksum:]), vhdFooterChecksum(ft); got != want {
					t.Errorf("footer checksum %08x, want %08x", got, want)
				}
				if got := binary.BigEndian.Uint32(ft[vhdTimeStamp:]); got != 1700000000-vhdEpochOffset {
					t.Errorf("footer time stamp %d", got)
				}
			}
		})
	}
	// The checksum formula is qemu-img's own: its untouched footer checks.
	plain := filepath.Join(dir, "plain.vhd")
	if o, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", raw, plain).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v\n%s", err, o)
	}
	b, _ := os.ReadFile(plain)
	ft := b[len(b)-vhdFooterSize:]
	if got, want := binary.BigEndian.Uint32(ft[vhdChecksum:]), vhdFooterChecksum(ft); got != want {
		t.Errorf("qemu-img's footer checksum %08x, ours %08x", got, want)
	}
}

func TestStampRefusesOtherFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(p, bytes.Repeat([]byte{0}, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"vmdk", "vhd"} {
		if err := stampIDs(p, format, ConvertIDs{}); err == nil || !strings.Contains(err.Error(), format) {
			t.Errorf("%s: stamping a file of zeros: %v, want an error naming the format", format, err)
		}
	}
	if err := stampIDs(p, "qcow2", ConvertIDs{}); err != nil {
		t.Errorf("qcow2 has no ids to stamp, got %v", err)
	}
}

// TestWithCID: qemu-img prints the CID without leading zeros (about one
// conversion in sixteen has a 7-digit CID), so the stamp rewrites the line
// and moves the text after it, keeping the descriptor's size; a full
// descriptor is refused rather than cut.
func TestWithCID(t *testing.T) {
	text := "# Disk DescriptorFile\nversion=1\nCID=%s\nparentCID=ffffffff\nRW 32768 SPARSE \"host.vmdk\"\n"
	cid := []byte{0x01, 0x02, 0x03, 0x04}
	want := []byte(strings.Replace(text, "%s", "01020304", 1))
	for _, old := range []string{"e67b1126", "cac3c7e", "5", "01020304"} {
		desc := append([]byte(strings.Replace(text, "%s", old, 1)), make([]byte, 64)...)
		got, err := withCID(desc, cid)
		if err != nil {
			t.Fatalf("CID=%s: %v", old, err)
		}
		if len(got) != len(desc) {
			t.Errorf("CID=%s: size %d, want %d", old, len(got), len(desc))
		}
		if !bytes.Equal(bytes.TrimRight(got, "\x00"), want) {
			t.Errorf("CID=%s: got\n%q\nwant\n%q", old, bytes.TrimRight(got, "\x00"), want)
		}
	}
	if got, _ := withCID(append([]byte(strings.Replace(text, "%s", "1", 1)), make([]byte, 16)...), []byte{0xff, 0xff, 0xff, 0xff}); !bytes.Contains(got, []byte("\nCID=feffffff\n")) {
		t.Errorf("a CID of ffffffff (no parent) was not avoided:\n%q", got)
	}
	full := []byte(strings.Replace(text, "%s", "1", 1))
	if _, err := withCID(full, cid); err == nil || !strings.Contains(err.Error(), "no room") {
		t.Errorf("a descriptor with no room: %v, want an error", err)
	}
	if _, err := withCID([]byte("version=1\n\x00\x00"), cid); err == nil || !strings.Contains(err.Error(), "no CID line") {
		t.Errorf("no CID line: %v", err)
	}
}
