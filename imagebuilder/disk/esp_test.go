package disk

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend/file"
)

// TestESPSizes builds ESPs of several sizes (go-diskfs picks 512-byte
// clusters up to 260 MB and 4 KiB above) and checks them with fsck.fat and
// by reading every file back.
func TestESPSizes(t *testing.T) {
	needTool(t, "fsck.fat", "dosfstools")
	big := bytes.Repeat([]byte("0123456789abcdef"), 2<<20) // 32 MiB, several Write calls
	files := []espFile{
		{Path: "/EFI/BOOT/BOOTX64.EFI", Data: []byte("MZ fake efi")},
		{Path: "/loader/loader.conf", Data: []byte(loaderConf("x"))},
		{Path: "/loader/entries/x.conf", Data: []byte("title x\n")},
		{Path: "/x/6.1.0-13-amd64/linux", Data: big},
		{Path: "/x/6.1.0-13-amd64/initrd", Data: []byte("initrd")},
	}
	for _, size := range []int64{40, 64, 128, 300, 600} {
		t.Run(fmt.Sprintf("%dMiB", size), func(t *testing.T) {
			l := planLayout(size*mib, 4*mib)
			img := filepath.Join(t.TempDir(), "esp.raw")
			f, err := os.Create(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(l.Size); err != nil {
				t.Fatal(err)
			}
			d, err := diskfs.OpenBackend(file.New(f, false), diskfs.WithSectorSize(diskfs.SectorSize512))
			if err != nil {
				t.Fatal(err)
			}
			u := PlanUUIDs("esp")
			if err := d.Partition(l.gptTable(u)); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := writeESP(context.Background(), d, 1, files); err != nil {
				t.Fatal(err)
			}
			if err := normalizeFAT32(f, l.ESP.Start, u.ESPSerial, time.Unix(DefaultEpoch, 0)); err != nil {
				t.Fatal(err)
			}
			t.Logf("ESP written in %v", time.Since(start))
			esp := extract(t, img, l.ESP)
			out, err := exec.Command("fsck.fat", "-n", "-v", esp).CombinedOutput()
			if err != nil {
				t.Fatalf("fsck.fat: %v\n%s", err, out)
			}
			t.Logf("fsck.fat -n -v:\n%s", out)
			if strings.Contains(string(out), "differ") || strings.Contains(string(out), "will be") {
				t.Errorf("fsck.fat complains:\n%s", out)
			}
			fs, err := d.GetFilesystem(1)
			if err != nil {
				t.Fatal(err)
			}
			for _, ef := range files {
				r, err := fs.OpenFile(ef.Path, os.O_RDONLY)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				if err != nil || !bytes.Equal(got, ef.Data) {
					t.Errorf("%s: read back %d bytes (%v), want %d", ef.Path, len(got), err, len(ef.Data))
				}
			}
			// Every timestamp is the epoch (1980-01-01 is date 0x0021, time 0).
			for _, fi := range mustReadDir(t, fs, "/loader") {
				if y, m, d := fi.ModTime().Date(); y != 1980 || m != 1 || d != 1 {
					t.Errorf("%s: mtime %v, want 1980-01-01", fi.Name(), fi.ModTime())
				}
			}
		})
	}
}

func mustReadDir(t *testing.T, fs interface {
	ReadDir(string) ([]os.FileInfo, error)
}, p string) []os.FileInfo {
	t.Helper()
	fis, err := fs.ReadDir(p)
	if err != nil {
		t.Fatal(err)
	}
	return fis
}

func TestDosDateTime(t *testing.T) {
	for _, tc := range []struct {
		in         time.Time
		date, time uint16
	}{
		{time.Unix(0, 0), 0x0021, 0},
		{time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC), (43 << 9) | (11 << 5) | 14, (22 << 11) | (13 << 5) | 10},
		{time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), (127 << 9) | (12 << 5) | 31, (23 << 11) | (59 << 5) | 29},
	} {
		d, tm := dosDateTime(tc.in)
		if d != tc.date || tm != tc.time {
			t.Errorf("dosDateTime(%v) = %#x %#x, want %#x %#x", tc.in, d, tm, tc.date, tc.time)
		}
	}
}
