package main

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// The skeleton (ib.mode=skeleton) is what the build machine needs to run
// the distro profile's fixups on a root it cannot mount: a tar on /dev/vdb
// of every entry of the root (directories, symlinks, files, device nodes)
// with owners and modes, and the contents of the files the fixups read or
// rewrite (everything under /etc up to 1 MiB, /usr/lib/os-release, the dpkg
// status). Other
// files carry no contents and the PAX record IMAGEBUILDER.omitted=<size>;
// the build refuses a fixup that would change one of them.

const (
	// OmittedKey marks a file whose contents are not in the skeleton.
	omittedKey  = "IMAGEBUILDER.omitted"
	maxEtcFile  = 1 << 20
	maxDpkgFile = 64 << 20
)

func withContents(rel string, size int64) bool {
	switch {
	case strings.HasPrefix(rel, "etc/"):
		return size <= maxEtcFile
	case rel == "usr/lib/os-release":
		return size <= maxEtcFile
	case rel == "var/lib/dpkg/status":
		return size <= maxDpkgFile
	}
	return false
}

// writeSkeleton writes the skeleton of root (a mounted directory) to the
// second disk.
func writeSkeleton(top string) error {
	dev, err := os.OpenFile("/dev/vdb", os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("opening the skeleton disk: %w", err)
	}
	defer dev.Close()
	bw := bufio.NewWriterSize(dev, 1<<20)
	tw := tar.NewWriter(bw)
	n := 0
	err = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == top {
			return nil
		}
		rel := strings.TrimPrefix(p, top+"/")
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		hdr := &tar.Header{Name: rel, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid), Format: tar.FormatPAX}
		var body io.Reader
		switch fi.Mode().Type() {
		case fs.ModeDir:
			hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
		case fs.ModeSymlink:
			hdr.Typeflag = tar.TypeSymlink
			if hdr.Linkname, err = os.Readlink(p); err != nil {
				return err
			}
		case 0:
			hdr.Typeflag = tar.TypeReg
			if withContents(rel, fi.Size()) {
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				defer f.Close()
				hdr.Size, body = fi.Size(), io.LimitReader(f, fi.Size())
			} else {
				hdr.PAXRecords = map[string]string{omittedKey: fmt.Sprint(fi.Size())}
			}
		case fs.ModeDevice | fs.ModeCharDevice, fs.ModeDevice:
			hdr.Typeflag = tar.TypeBlock
			if fi.Mode()&fs.ModeCharDevice != 0 {
				hdr.Typeflag = tar.TypeChar
			}
			hdr.Devmajor, hdr.Devminor = int64(major(st.Rdev)), int64(minor(st.Rdev))
		case fs.ModeNamedPipe:
			hdr.Typeflag = tar.TypeFifo
		default:
			return nil // sockets
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if body != nil {
			if _, err := io.Copy(tw, body); err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
		}
		n++
		return nil
	})
	if err != nil {
		return fmt.Errorf("skeleton: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("skeleton: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("skeleton: %w", err)
	}
	fmt.Printf("appliance: skeleton of %d entries written\n", n)
	return dev.Sync()
}

func major(dev uint64) uint32 { return uint32((dev>>8)&0xfff) | uint32((dev>>32)&^0xfff) }
func minor(dev uint64) uint32 { return uint32(dev&0xff) | uint32((dev>>12)&^0xff) }
