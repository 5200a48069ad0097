package disk

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// readerWriterAt is what the FAT normalizer edits in place.
type readerWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// normalizeFAT32 makes a FAT32 filesystem at byte offset off reproducible:
// it sets the volume serial (boot sector and its backup) and every directory
// entry's create, access and modify times to t. go-diskfs takes both from
// the clock.
func normalizeFAT32(f readerWriterAt, off int64, serial uint32, t time.Time) error {
	bs := make([]byte, 512)
	if _, err := f.ReadAt(bs, off); err != nil {
		return fmt.Errorf("reading FAT32 boot sector: %w", err)
	}
	if bs[510] != 0x55 || bs[511] != 0xaa || string(bs[82:90]) != "FAT32   " {
		return fmt.Errorf("no FAT32 boot sector at offset %d", off)
	}
	bps := int64(binary.LittleEndian.Uint16(bs[11:13]))
	spc := int64(bs[13])
	reserved := int64(binary.LittleEndian.Uint16(bs[14:16]))
	fats := int64(bs[16])
	spf := int64(binary.LittleEndian.Uint32(bs[36:40]))
	root := binary.LittleEndian.Uint32(bs[44:48])
	backup := int64(binary.LittleEndian.Uint16(bs[50:52]))
	if bps < 512 || spc == 0 || fats == 0 || spf == 0 {
		return fmt.Errorf("implausible FAT32 geometry at offset %d", off)
	}
	var ser [4]byte
	binary.LittleEndian.PutUint32(ser[:], serial)
	sectors := []int64{0}
	if backup != 0 {
		sectors = append(sectors, backup)
	}
	for _, sector := range sectors {
		if _, err := f.WriteAt(ser[:], off+sector*bps+67); err != nil {
			return fmt.Errorf("writing FAT32 volume serial: %w", err)
		}
	}
	n := &fatNormalizer{
		f:            f,
		fatOff:       off + reserved*bps,
		dataOff:      off + (reserved+fats*spf)*bps,
		clusterBytes: spc * bps,
		maxCluster:   uint32(spf * bps / 4),
		seen:         map[uint32]bool{},
	}
	n.date, n.time = dosDateTime(t)
	return n.dir(root)
}

type fatNormalizer struct {
	f               readerWriterAt
	fatOff, dataOff int64
	clusterBytes    int64
	maxCluster      uint32
	date, time      uint16
	seen            map[uint32]bool
}

// chain returns the cluster chain starting at c.
func (n *fatNormalizer) chain(c uint32) ([]uint32, error) {
	var out []uint32
	var b [4]byte
	for c >= 2 && c < 0x0ffffff8 {
		if c >= n.maxCluster || len(out) > int(n.maxCluster) {
			return nil, fmt.Errorf("FAT32 cluster chain runs off the table at cluster %d", c)
		}
		out = append(out, c)
		if _, err := n.f.ReadAt(b[:], n.fatOff+int64(c)*4); err != nil {
			return nil, fmt.Errorf("reading FAT: %w", err)
		}
		c = binary.LittleEndian.Uint32(b[:]) & 0x0fffffff
	}
	return out, nil
}

// dir normalizes every entry of the directory starting at cluster c and
// recurses into subdirectories.
func (n *fatNormalizer) dir(c uint32) error {
	if n.seen[c] {
		return nil
	}
	n.seen[c] = true
	clusters, err := n.chain(c)
	if err != nil {
		return err
	}
	var subdirs []uint32
	buf := make([]byte, n.clusterBytes)
	for _, cl := range clusters {
		at := n.dataOff + int64(cl-2)*n.clusterBytes
		if _, err := n.f.ReadAt(buf, at); err != nil {
			return fmt.Errorf("reading FAT directory cluster %d: %w", cl, err)
		}
		end := false
		for i := 0; i+32 <= len(buf); i += 32 {
			e := buf[i : i+32]
			if e[0] == 0 {
				end = true
				break
			}
			if e[0] == 0xe5 || e[11] == 0x0f { // deleted, long-name slot
				continue
			}
			e[13] = 0
			binary.LittleEndian.PutUint16(e[14:16], n.time)
			binary.LittleEndian.PutUint16(e[16:18], n.date)
			binary.LittleEndian.PutUint16(e[18:20], n.date)
			binary.LittleEndian.PutUint16(e[22:24], n.time)
			binary.LittleEndian.PutUint16(e[24:26], n.date)
			if e[11]&0x10 != 0 && e[0] != '.' {
				sub := uint32(binary.LittleEndian.Uint16(e[20:22]))<<16 | uint32(binary.LittleEndian.Uint16(e[26:28]))
				subdirs = append(subdirs, sub)
			}
		}
		if _, err := n.f.WriteAt(buf, at); err != nil {
			return fmt.Errorf("writing FAT directory cluster %d: %w", cl, err)
		}
		if end {
			break
		}
	}
	for _, s := range subdirs {
		if err := n.dir(s); err != nil {
			return err
		}
	}
	return nil
}

// dosDateTime encodes t (UTC) as a FAT date and time, clamped to the FAT
// range 1980..2107.
func dosDateTime(t time.Time) (date, tm uint16) {
	t = t.UTC()
	if t.Year() < 1980 {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if t.Year() > 2107 {
		t = time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC)
	}
	date = uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day())
	tm = uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2)
	return date, tm
}
