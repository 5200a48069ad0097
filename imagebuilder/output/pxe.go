package output

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cavaliergopher/cpio"
	"github.com/klauspost/compress/gzip"

	"imagebuilder/overlay"
	"imagebuilder/pkgbuild/atomicfile"
)

// PXE file names inside the NAME.pxe folder.
const (
	PXEKernel = "vmlinuz"
	PXERootfs = "rootfs.cpio.gz"
	PXEScript = "boot.ipxe"
)

// PXECmdline is the kernel command line a PXE boot needs: the whole root
// filesystem is the initramfs, so the kernel runs systemd from it directly
// (rdinit=) and no root= is given.
const PXECmdline = "rdinit=/sbin/init"

// PXEOptions tune WritePXE.
type PXEOptions struct {
	// Kernel is the tree path of the kernel ("boot/vmlinuz-6.1.0-13-amd64").
	Kernel string
	// Cmdline is appended to PXECmdline (console settings, cluster.role=).
	Cmdline string
	Epoch   int64
}

// WritePXE writes dir (NAME.pxe): the tree's kernel, the whole tree as a
// gzip-compressed newc cpio to be loaded as the initramfs, and an iPXE
// script with the command line. The host then runs from RAM (tmpfs root):
// no disk, no NFS, no network root.
//
// Device nodes are left out (the kernel's built-in initramfs provides
// /dev/console and systemd mounts devtmpfs on /dev) and so are xattrs, which
// newc cannot carry: file capabilities are lost.
func WritePXE(ctx context.Context, dir string, tree *overlay.Tree, o PXEOptions) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	kernel := filepath.Join(dir, PXEKernel)
	if err := copyFileAtomic(filepath.Join(tree.Root, filepath.FromSlash(o.Kernel)), kernel); err != nil {
		return nil, fmt.Errorf("pxe kernel: %w", err)
	}
	rootfs := filepath.Join(dir, PXERootfs)
	err := atomicfile.Write(rootfs, 0o644, func(w io.Writer) error {
		zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
		if err != nil {
			return err
		}
		bw := bufio.NewWriterSize(zw, 1<<20)
		if err := WriteCpio(ctx, bw, tree, o.Epoch); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		return zw.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("pxe rootfs: %w", err)
	}
	script := filepath.Join(dir, PXEScript)
	cmdline := strings.TrimSpace(PXECmdline + " " + o.Cmdline)
	ipxe := fmt.Sprintf("#!ipxe\n# Boots the host image from RAM: the initramfs is the whole root filesystem.\n# Give the VM or machine at least 3x the size of %s in RAM.\nkernel %s %s\ninitrd %s\nboot\n",
		PXERootfs, PXEKernel, cmdline, PXERootfs)
	if err := atomicfile.WriteFile(script, []byte(ipxe), 0o644); err != nil {
		return nil, err
	}
	return []string{kernel, rootfs, script}, nil
}

// WriteCpio writes the tree as a newc cpio archive in path order, owners and
// modes from the entries, every time epoch; see WritePXE for what is left
// out.
func WriteCpio(ctx context.Context, w io.Writer, tree *overlay.Tree, epoch int64) error {
	cw := cpio.NewWriter(w)
	mtime := time.Unix(epoch, 0)
	buf := make([]byte, 1<<20)
	inodes := map[string]int64{}
	next := int64(1)
	hasLinks := map[string]bool{}
	for _, e := range tree.Entries {
		if e.Kind == overlay.KindHardlink {
			g, err := linkGroup(tree, e)
			if err != nil {
				return err
			}
			hasLinks[g] = true
		}
	}
	for _, e := range tree.Sorted() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.Path == "" {
			continue
		}
		h := &cpio.Header{Name: e.Path, Uid: e.UID, Guid: e.GID, ModTime: mtime, Mode: cpio.FileMode(e.Mode & 0o7777), Links: 1}
		content := false
		switch e.Kind {
		case overlay.KindDir:
			h.Mode |= cpio.TypeDir
			h.Links = 2
		case overlay.KindSymlink:
			h.Mode |= cpio.TypeSymlink
			h.Size = int64(len(e.Link))
		case overlay.KindFile, overlay.KindHardlink:
			group, err := linkGroup(tree, e)
			if err != nil {
				return err
			}
			target := tree.Entries[group]
			h.Mode = cpio.FileMode(target.Mode&0o7777) | cpio.TypeReg
			h.Uid, h.Guid = target.UID, target.GID
			if ino, ok := inodes[group]; ok {
				h.Inode, h.Links = ino, 2
			} else {
				inodes[group] = next
				h.Inode, h.Size, content = next, target.Size, true
				next++
				if hasLinks[group] {
					h.Links = 2
				}
			}
		default:
			continue // device nodes and fifos: see WritePXE
		}
		if h.Inode == 0 {
			h.Inode = next
			next++
		}
		if err := cw.WriteHeader(h); err != nil {
			return fmt.Errorf("cpio /%s: %w", e.Path, err)
		}
		switch {
		case e.Kind == overlay.KindSymlink:
			if _, err := io.WriteString(cw, e.Link); err != nil {
				return fmt.Errorf("cpio /%s: %w", e.Path, err)
			}
		case content:
			if err := copyContent(cw, filepath.Join(tree.Root, filepath.FromSlash(e.Path)), h.Size, buf); err != nil {
				return fmt.Errorf("cpio /%s: %w", e.Path, err)
			}
		}
	}
	return cw.Close()
}

func copyFileAtomic(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}
