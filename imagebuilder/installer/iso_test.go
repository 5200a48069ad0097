package installer

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestISO9660IsReproducible lays out the same files twice, a second apart
// and in different folders (so the workspaces' ctimes differ), and compares
// the ISOs byte for byte; xorriso reads the result back as an oracle.
func TestISO9660IsReproducible(t *testing.T) {
	build := func() []byte {
		ws := t.TempDir()
		os.MkdirAll(filepath.Join(ws, "boot/grub"), 0o755)
		os.WriteFile(filepath.Join(ws, "boot/grub/eltorito.img"), bytes.Repeat([]byte{0xeb}, 5000), 0o644)
		os.WriteFile(filepath.Join(ws, "boot/efiboot.img"), make([]byte, 64<<10), 0o644)
		os.WriteFile(filepath.Join(ws, "boot/vmlinuz"), []byte("kernel"), 0o644)
		out := filepath.Join(t.TempDir(), "x.iso")
		if err := writeISO9660(ws, out, 1700000000, nil); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a := build()
	time.Sleep(1100 * time.Millisecond)
	b := build()
	if !bytes.Equal(a, b) {
		n := 0
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				n = i
				break
			}
		}
		t.Fatalf("two ISOs of the same files differ (sizes %d, %d; first at byte %d, sector %d)", len(a), len(b), n, n/2048)
	}
	if _, err := exec.LookPath("xorriso"); err != nil {
		t.Fatal("xorriso not found: apt-get install xorriso")
	}
	p := filepath.Join(t.TempDir(), "a.iso")
	os.WriteFile(p, a, 0o644)
	out, err := exec.Command("xorriso", "-indev", p, "-report_el_torito", "plain", "-find", "/", "-exec", "lsdl").CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	for _, want := range []string{"El Torito boot img :   1  BIOS", "El Torito boot img :   2  UEFI", "'/boot/vmlinuz'", "Nov 14  2023"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("xorriso report lacks %q:\n%s", want, out)
		}
	}
}
