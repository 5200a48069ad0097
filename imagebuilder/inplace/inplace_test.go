package inplace

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cavaliergopher/cpio"
)

func TestLoadOrder(t *testing.T) {
	dep := `kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
kernel/drivers/block/virtio_blk.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_pci_legacy_dev.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/drivers/net/virtio_net.ko: kernel/net/core/failover.ko
`
	got, err := loadOrder(dep)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kernel/drivers/virtio/virtio_pci_legacy_dev.ko", "kernel/drivers/virtio/virtio_pci_modern_dev.ko", "kernel/drivers/virtio/virtio_pci.ko",
		"kernel/drivers/block/virtio_blk.ko", "kernel/arch/x86/crypto/crc32c-intel.ko",
		"kernel/lib/libcrc32c.ko", "kernel/fs/xfs/xfs.ko",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order\n got %v\nwant %v", got, want)
	}
	if _, err := loadOrder("kernel/drivers/net/virtio_net.ko:\n"); err == nil {
		t.Error("no wanted module: no error")
	}
}

// TestInitramfsReproducible: the same inputs give the same bytes, and the
// archive holds /init and the modules in order.
func TestInitramfsReproducible(t *testing.T) {
	initBin := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(initBin, []byte("\x7fELF fake"), 0o755); err != nil {
		t.Fatal(err)
	}
	k := &Kernel{Version: "6.1", Modules: []Module{{Name: "libcrc32c.ko", Data: []byte("a")}, {Name: "xfs.ko", Data: []byte("b")}}}
	a, err := Initramfs(initBin, k)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Initramfs(initBin, k)
	if !bytes.Equal(a, b) {
		t.Fatal("two builds differ")
	}
	r := cpio.NewReader(bytes.NewReader(a))
	files := map[string]string{}
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(r)
		files[h.Name] = string(data)
		if h.Name == "init" && h.Mode.Perm() != 0o755 {
			t.Errorf("init mode %v", h.Mode)
		}
	}
	if files["modules.order"] != "/modules/libcrc32c.ko\n/modules/xfs.ko\n" || files["init"] != "\x7fELF fake" || files["modules/xfs.ko"] != "b" {
		t.Errorf("archive: %q", files)
	}
}
