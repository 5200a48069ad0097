package inplace

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cavaliergopher/cpio"
)

// Initramfs builds the appliance's initramfs (newc cpio): /init, the
// modules under /modules and their load order in /modules.order. Entries
// are root-owned with a fixed mtime, so the same inputs give the same bytes.
func Initramfs(initBinary string, k *Kernel) ([]byte, error) {
	init, err := os.ReadFile(initBinary)
	if err != nil {
		return nil, fmt.Errorf("reading the appliance binary: %w", err)
	}
	var buf bytes.Buffer
	w := cpio.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dir := func(name string) error {
		return w.WriteHeader(&cpio.Header{Name: name, Mode: cpio.TypeDir | 0o755, ModTime: epoch})
	}
	file := func(name string, mode cpio.FileMode, data []byte) error {
		if err := w.WriteHeader(&cpio.Header{Name: name, Mode: cpio.TypeReg | mode, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := w.Write(data)
		return err
	}
	for _, d := range []string{"dev", "proc", "sys", "mnt", "modules"} {
		if err := dir(d); err != nil {
			return nil, err
		}
	}
	var order []string
	for _, m := range k.Modules {
		p := "modules/" + m.Name
		if err := file(p, 0o644, m.Data); err != nil {
			return nil, err
		}
		order = append(order, "/"+p)
	}
	if err := file("modules.order", 0o644, []byte(strings.Join(order, "\n")+"\n")); err != nil {
		return nil, err
	}
	if err := file("init", 0o755, init); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
