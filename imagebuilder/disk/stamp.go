package disk

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
)

// ConvertIDs makes the identifiers that qemu-img draws at random (or from
// the clock) in vmdk and vhd images deterministic: they come from Seed and
// SourceDateEpoch, so the same build gives the same bytes.
type ConvertIDs struct {
	// Seed is the build's seed (the one its disk UUIDs come from).
	Seed string
	// SourceDateEpoch stamps the VHD footer's creation time.
	SourceDateEpoch int64
}

// stampIDs rewrites the random identifiers of the image at path, made by
// qemu-img in format: the VMDK descriptor's CID, the VHD footer's unique
// id and time stamp (and its checksum). Other formats carry none.
func stampIDs(path, format string, ids ConvertIDs) error {
	switch format {
	case "vmdk":
		return stampVMDK(path, ids)
	case "vhd":
		return stampVHD(path, ids)
	}
	return nil
}

func idBytes(ids ConvertIDs, what string) []byte {
	h := sha256.Sum256([]byte("imagebuilder/disk " + what + "\x00" + ids.Seed))
	return h[:]
}

// vmdkHeaderSize is the size of a VMDK sparse extent header; its
// descriptor offset and size (in sectors) are little-endian uint64s at 28
// and 36.
const vmdkHeaderSize = 512

// stampVMDK replaces the value of "CID=" in the embedded descriptor (the
// content id, random in qemu-img) with one derived from the seed.
func stampVMDK(path string, ids ConvertIDs) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	hdr := make([]byte, vmdkHeaderSize)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return fmt.Errorf("vmdk %s: reading the header: %w", path, err)
	}
	if string(hdr[:4]) != "KDMV" {
		return fmt.Errorf("vmdk %s: no sparse extent header (magic %q)", path, hdr[:4])
	}
	off := binary.LittleEndian.Uint64(hdr[28:]) * 512
	size := binary.LittleEndian.Uint64(hdr[36:]) * 512
	if off == 0 || size == 0 || size > 1<<20 {
		return fmt.Errorf("vmdk %s: no embedded descriptor (offset %d, size %d)", path, off, size)
	}
	desc := make([]byte, size)
	if _, err := f.ReadAt(desc, int64(off)); err != nil {
		return fmt.Errorf("vmdk %s: reading the descriptor: %w", path, err)
	}
	desc, err = withCID(desc, idBytes(ids, "vmdk CID")[:4])
	if err != nil {
		return fmt.Errorf("vmdk %s: %w", path, err)
	}
	if _, err := f.WriteAt(desc, int64(off)); err != nil {
		return fmt.Errorf("vmdk %s: writing the descriptor: %w", path, err)
	}
	return f.Close()
}

// withCID returns the descriptor desc (NUL-padded text) with its CID line
// set to the 8 hex digits of cid. qemu-img prints the CID without leading
// zeros, so the old value is 1 to 8 digits long and the text after it
// moves; the result keeps desc's size, padded with NULs.
func withCID(desc, cid []byte) ([]byte, error) {
	text := desc
	if n := bytes.IndexByte(desc, 0); n >= 0 {
		text = desc[:n]
	}
	i := bytes.Index(text, []byte("\nCID="))
	if i < 0 {
		return nil, fmt.Errorf("the descriptor has no CID line")
	}
	start := i + len("\nCID=")
	end := bytes.IndexByte(text[start:], '\n')
	if end < 0 {
		return nil, fmt.Errorf("the descriptor's CID line has no end")
	}
	end += start
	// ffffffff means "no parent" in parentCID; keep clear of it.
	cid = bytes.Clone(cid)
	if bytes.Equal(cid, []byte{0xff, 0xff, 0xff, 0xff}) {
		cid[0] = 0xfe
	}
	out := make([]byte, 0, len(desc))
	out = append(out, text[:start]...)
	out = append(out, hex.EncodeToString(cid)...)
	out = append(out, text[end:]...)
	if len(out) >= len(desc) {
		return nil, fmt.Errorf("the descriptor (%d bytes) has no room for an 8-digit CID", len(desc))
	}
	return append(out, make([]byte, len(desc)-len(out))...), nil
}

// VHD footer fields (big-endian), at the end of a fixed VHD.
const (
	vhdFooterSize  = 512
	vhdTimeStamp   = 24 // uint32, seconds since 2000-01-01 UTC
	vhdDiskType    = 60 // uint32, 2 = fixed
	vhdChecksum    = 64 // uint32, one's complement of the byte sum
	vhdUniqueID    = 68 // 16 bytes
	vhdEpochOffset = 946684800
)

// stampVHD sets the footer's unique id from the seed and its time stamp
// from SourceDateEpoch, and recomputes its checksum. Only fixed VHDs
// (a footer and no header copy) are expected.
func stampVHD(path string, ids ConvertIDs) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	at := st.Size() - vhdFooterSize
	if at < 0 {
		return fmt.Errorf("vhd %s: shorter than its footer", path)
	}
	ft := make([]byte, vhdFooterSize)
	if _, err := f.ReadAt(ft, at); err != nil {
		return fmt.Errorf("vhd %s: reading the footer: %w", path, err)
	}
	if string(ft[:8]) != "conectix" {
		return fmt.Errorf("vhd %s: no footer (cookie %q)", path, ft[:8])
	}
	if t := binary.BigEndian.Uint32(ft[vhdDiskType:]); t != 2 {
		return fmt.Errorf("vhd %s: disk type %d, want a fixed disk (2)", path, t)
	}
	stamp := max(ids.SourceDateEpoch-vhdEpochOffset, 0)
	binary.BigEndian.PutUint32(ft[vhdTimeStamp:], uint32(min(stamp, 1<<32-1)))
	copy(ft[vhdUniqueID:vhdUniqueID+16], idBytes(ids, "vhd unique id"))
	binary.BigEndian.PutUint32(ft[vhdChecksum:], vhdFooterChecksum(ft))
	if _, err := f.WriteAt(ft, at); err != nil {
		return fmt.Errorf("vhd %s: writing the footer: %w", path, err)
	}
	return f.Close()
}

// vhdFooterChecksum is the one's complement of the sum of the footer's
// bytes, its checksum field left out.
func vhdFooterChecksum(ft []byte) uint32 {
	var sum uint32
	for i, b := range ft {
		if i >= vhdChecksum && i < vhdChecksum+4 {
			continue
		}
		sum += uint32(b)
	}
	return ^sum
}
