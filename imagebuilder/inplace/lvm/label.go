package lvm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

const (
	// SectorSize is LVM's unit for label and metadata sizes.
	SectorSize = 512
	// labelScanSectors: the label is in one of the first four sectors.
	labelScanSectors = 4
	labelID          = "LABELONE"
	labelType        = "LVM2 001"
	mdaHeaderSize    = 512
	mdaMagic         = " LVM2 x[5A%r0N*>"
	initialCRC       = 0xf597a6cf
	// maxMetadata bounds the text read from one metadata area.
	maxMetadata = 64 << 20
)

// crc is LVM's calc_crc: the CRC-32 (IEEE, reflected) with LVM's initial
// value and no final inversion.
func crc(data []byte) uint32 {
	return ^crc32.Update(^uint32(initialCRC), crc32.IEEETable, data)
}

// Area is a disk location of a physical volume, in bytes from the start
// of the device.
type Area struct{ Offset, Size uint64 }

// PV is what a physical volume's label says.
type PV struct {
	// UUID is the PV's 32-character id (no dashes).
	UUID string
	// DeviceSize is the size the PV was created with, in bytes.
	DeviceSize uint64
	// LabelSector is the sector holding the label.
	LabelSector uint64
	// Data and Metadata are the data areas and the metadata areas.
	Data, Metadata []Area
	// Text is the volume group metadata of the first valid metadata area
	// (empty when the PV carries no metadata area).
	Text string
}

// ErrNoLabel is returned by ReadPV for a device without an LVM2 label.
var ErrNoLabel = errors.New("no LVM2 physical volume label")

// ReadPV reads the label, the pv_header and the metadata of the physical
// volume on r. It returns ErrNoLabel when the first sectors hold no label,
// and an error naming the structure when a label is there but damaged.
func ReadPV(r io.ReaderAt) (*PV, error) {
	head := make([]byte, labelScanSectors*SectorSize)
	n, err := r.ReadAt(head, 0)
	if n < SectorSize {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, ErrNoLabel
		}
		return nil, fmt.Errorf("reading the label sectors: %w", err)
	}
	head = head[:n-n%SectorSize]
	for s := 0; s < len(head)/SectorSize; s++ {
		sec := head[s*SectorSize : (s+1)*SectorSize]
		if string(sec[:8]) != labelID {
			continue
		}
		return parseLabel(r, uint64(s), sec)
	}
	return nil, ErrNoLabel
}

func parseLabel(r io.ReaderAt, s uint64, sec []byte) (*PV, error) {
	le := binary.LittleEndian
	where := fmt.Sprintf("LVM label (sector %d)", s)
	if got := le.Uint64(sec[8:]); got != s {
		return nil, fmt.Errorf("%s: sector_xl is %d", where, got)
	}
	if want, got := le.Uint32(sec[16:]), crc(sec[20:]); want != got {
		return nil, fmt.Errorf("%s: checksum %#08x, computed %#08x (corrupt label)", where, want, got)
	}
	if t := string(sec[24:32]); t != labelType {
		return nil, fmt.Errorf("%s: type %q, want %q", where, t, labelType)
	}
	off := le.Uint32(sec[20:])
	if off < 32 || off+40 > SectorSize {
		return nil, fmt.Errorf("%s: pv_header offset %d out of the sector", where, off)
	}
	pv := &PV{LabelSector: s}
	h := sec[off:]
	pv.UUID = string(bytes.TrimRight(h[:32], "\x00"))
	pv.DeviceSize = le.Uint64(h[32:])
	p := 40
	readList := func(what string) ([]Area, error) {
		var out []Area
		for {
			if int(off)+p+16 > SectorSize {
				return nil, fmt.Errorf("%s: pv_header %s list runs past the sector", where, what)
			}
			a := Area{le.Uint64(h[p:]), le.Uint64(h[p+8:])}
			p += 16
			if a.Offset == 0 {
				return out, nil
			}
			out = append(out, a)
		}
	}
	var err error
	if pv.Data, err = readList("data area"); err != nil {
		return nil, err
	}
	if pv.Metadata, err = readList("metadata area"); err != nil {
		return nil, err
	}
	if len(pv.Data) == 0 {
		return nil, fmt.Errorf("%s: pv_header lists no data area", where)
	}
	var errs []error
	for i, m := range pv.Metadata {
		text, err := readMetadata(r, m)
		if err != nil {
			errs = append(errs, fmt.Errorf("metadata area %d at byte %d: %w", i+1, m.Offset, err))
			continue
		}
		if text != "" {
			pv.Text = text
			return pv, nil
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("physical volume %s: %w", pv.UUID, errors.Join(errs...))
	}
	return pv, nil
}

// readMetadata returns the text the metadata area's first raw_locn points
// to, checked against its checksum ("" for an empty area).
func readMetadata(r io.ReaderAt, m Area) (string, error) {
	le := binary.LittleEndian
	h := make([]byte, mdaHeaderSize)
	if _, err := r.ReadAt(h, int64(m.Offset)); err != nil {
		return "", fmt.Errorf("reading mda_header: %w", err)
	}
	if want, got := le.Uint32(h), crc(h[4:]); want != got {
		return "", fmt.Errorf("mda_header checksum %#08x, computed %#08x (corrupt metadata header)", want, got)
	}
	if string(h[4:20]) != mdaMagic {
		return "", fmt.Errorf("mda_header magic %q is not LVM2's", h[4:20])
	}
	if v := le.Uint32(h[20:]); v != 1 {
		return "", fmt.Errorf("mda_header version %d (only 1 is known)", v)
	}
	if start := le.Uint64(h[24:]); start != m.Offset {
		return "", fmt.Errorf("mda_header start %d, but the area is at %d", start, m.Offset)
	}
	size := le.Uint64(h[32:])
	if size <= mdaHeaderSize || (m.Size != 0 && size > m.Size) {
		return "", fmt.Errorf("mda_header size %d does not fit the area (%d bytes)", size, m.Size)
	}
	off, n, sum := le.Uint64(h[40:]), le.Uint64(h[48:]), le.Uint32(h[56:])
	if off == 0 {
		return "", nil
	}
	if off < mdaHeaderSize || off >= size || n == 0 || n > size-mdaHeaderSize || n > maxMetadata {
		return "", fmt.Errorf("raw_locn offset %d size %d out of the %d-byte area", off, n, size)
	}
	buf := make([]byte, n)
	first := n
	if off+n > size { // the text wraps to just after the header
		first = size - off
	}
	if _, err := r.ReadAt(buf[:first], int64(m.Offset+off)); err != nil {
		return "", fmt.Errorf("reading metadata text: %w", err)
	}
	if first < n {
		if _, err := r.ReadAt(buf[first:], int64(m.Offset+mdaHeaderSize)); err != nil {
			return "", fmt.Errorf("reading wrapped metadata text: %w", err)
		}
	}
	if got := crc(buf); got != sum {
		return "", fmt.Errorf("metadata text checksum %#08x, computed %#08x (corrupt metadata)", sum, got)
	}
	return string(bytes.TrimRight(buf, "\x00")), nil
}
