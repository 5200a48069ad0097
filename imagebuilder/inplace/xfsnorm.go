package inplace

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
)

// Why in-place XFS outputs differ between two runs, and what NormalizeXFS
// does about it (measured on two builds of the same inputs: 37 of 82k
// blocks differed, all inode clusters or the log):
//
//   - inode timestamps (atime, mtime, ctime, crtime) come from the
//     appliance's clock; ctime and crtime cannot be set from user space;
//   - inode generation numbers are random (a new inode cluster gets
//     get_random_u32(); a reused inode gets the old one plus one);
//   - each inode records the LSN of its last logged change;
//   - each inode counts its changes (di_changecount, i_version), and a
//     write updates the times (and the count) only when the coarse clock
//     has ticked since the last one, so the count depends on timing (seen
//     under load: one file's count differed by one);
//   - the log holds copies of the logged inodes, so it differs too.
//
// NormalizeXFS rewrites every inode slot that differs from the same slot
// of the vendor's file system (untouched vendor inodes stay as they are):
// the four timestamps become the build's SOURCE_DATE_EPOCH, the generation
// a hash of the inode number and the epoch, the change count one, the LSN
// zero, and the CRC is recomputed. FormatXFSLog then rewrites the log (xfs_db
// logformat) at a cycle above every LSN left in the metadata, as
// xfs_repair does. Which inode a new file gets must itself be
// deterministic: the appliance frees nothing until all overlay entries
// exist (see the appliance's trash), so XFS's background inode
// inactivation cannot hand a freed inode to a later file at a moment that
// depends on timing.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type xfsGeometry struct {
	blockSize, agBlocks, inodeSize uint32
	dblocks                        uint64
	agBlkLog, inopbLog             uint8
}

func readXFSGeometry(r io.ReaderAt) (xfsGeometry, error) {
	sb := make([]byte, 512)
	if _, err := r.ReadAt(sb, 0); err != nil {
		return xfsGeometry{}, fmt.Errorf("reading the XFS superblock: %w", err)
	}
	be := binary.BigEndian
	if string(sb[:4]) != "XFSB" {
		return xfsGeometry{}, errors.New("no XFS superblock")
	}
	if be.Uint16(sb[100:])&0xf != 5 {
		return xfsGeometry{}, fmt.Errorf("XFS version %d: %w (only v5 file systems, with CRCs, are)", be.Uint16(sb[100:])&0xf, ErrNotNormalized)
	}
	g := xfsGeometry{
		blockSize: be.Uint32(sb[4:]), dblocks: be.Uint64(sb[8:]), agBlocks: be.Uint32(sb[84:]),
		inodeSize: uint32(be.Uint16(sb[104:])), inopbLog: sb[123], agBlkLog: sb[124],
	}
	if g.blockSize < 512 || g.blockSize > 65536 || g.inodeSize < 256 || g.inodeSize > g.blockSize || g.agBlocks == 0 {
		return xfsGeometry{}, fmt.Errorf("implausible XFS geometry %+v", g)
	}
	return g, nil
}

// inodeCRCOffset is where a v3 inode keeps its CRC32c.
const inodeCRCOffset = 100

func inodeCRC(ino []byte) uint32 {
	c := crc32.Update(0, castagnoli, ino[:inodeCRCOffset])
	c = crc32.Update(c, castagnoli, []byte{0, 0, 0, 0})
	return crc32.Update(c, castagnoli, ino[inodeCRCOffset+4:])
}

// NormalizeXFS rewrites, in the XFS file system on out, the inodes whose
// slot differs from the same slot of vendor (the same file system before
// the run; both readers start at the file system's first byte). It returns how many
// inodes it rewrote.
func NormalizeXFS(out interface {
	io.ReaderAt
	io.WriterAt
}, vendor io.ReaderAt, epoch int64) (int, error) {
	g, err := readXFSGeometry(out)
	if err != nil {
		return 0, err
	}
	be := binary.BigEndian
	bs := int64(g.blockSize)
	// Compare in chunks of whole blocks.
	per := max(1, (1<<20)/bs)
	a, b := make([]byte, per*bs), make([]byte, per*bs)
	n := 0
	for first := int64(0); first < int64(g.dblocks); first += per {
		count := min(per, int64(g.dblocks)-first)
		ca, cb := a[:count*bs], b[:count*bs]
		if _, err := out.ReadAt(ca, first*bs); err != nil {
			return n, fmt.Errorf("reading blocks %d-%d: %w", first, first+count-1, err)
		}
		if _, err := vendor.ReadAt(cb, first*bs); err != nil && !errors.Is(err, io.EOF) {
			return n, fmt.Errorf("reading vendor blocks %d-%d: %w", first, first+count-1, err)
		}
		if bytes.Equal(ca, cb) {
			continue
		}
		for i := int64(0); i < count; i++ {
			blk := uint64(first + i)
			ba, bb := ca[i*bs:(i+1)*bs], cb[i*bs:(i+1)*bs]
			if bytes.Equal(ba, bb) {
				continue
			}
			changed := false
			agno, agbno := blk/uint64(g.agBlocks), blk%uint64(g.agBlocks)
			for slot := uint32(0); slot < g.blockSize/g.inodeSize; slot++ {
				ino := ba[slot*g.inodeSize : (slot+1)*g.inodeSize]
				if bytes.Equal(ino, bb[slot*g.inodeSize:(slot+1)*g.inodeSize]) {
					continue // the vendor's inode, untouched
				}
				want := agno<<(g.agBlkLog+g.inopbLog) | agbno<<g.inopbLog | uint64(slot)
				if be.Uint16(ino) != 0x494e || ino[4] != 3 || be.Uint64(ino[152:]) != want ||
					binary.LittleEndian.Uint32(ino[inodeCRCOffset:]) != inodeCRC(ino) {
					continue // not an inode (a data block that looks like one fails the CRC)
				}
				normalizeInode(ino, want, epoch)
				changed = true
				n++
			}
			if changed {
				if _, err := out.WriteAt(ba, int64(blk)*bs); err != nil {
					return n, fmt.Errorf("writing block %d: %w", blk, err)
				}
			}
		}
	}
	return n, nil
}

const diflag2Bigtime = 1 << 3

func normalizeInode(ino []byte, number uint64, epoch int64) {
	be := binary.BigEndian
	var ts [8]byte
	if be.Uint64(ino[120:])&diflag2Bigtime != 0 {
		be.PutUint64(ts[:], uint64(epoch+1<<31)*1e9)
	} else {
		be.PutUint32(ts[:4], uint32(int32(epoch)))
	}
	for _, at := range []int{32, 40, 48, 144} { // atime, mtime, ctime, crtime
		copy(ino[at:at+8], ts[:])
	}
	var seed [16]byte
	be.PutUint64(seed[:8], number)
	be.PutUint64(seed[8:], uint64(epoch))
	sum := sha256.Sum256(seed[:])
	copy(ino[92:96], sum[:4])  // generation
	be.PutUint64(ino[104:], 1) // change count (i_version)
	be.PutUint64(ino[112:], 0) // lsn
	binary.LittleEndian.PutUint32(ino[inodeCRCOffset:], inodeCRC(ino))
}

// logCycle is the cycle number stamped on the first sector of the
// internal log: the current cycle, or the one before when the head sits
// exactly at the start of the log.
func logCycle(r io.ReaderAt) (uint32, error) {
	sb := make([]byte, 512)
	if _, err := r.ReadAt(sb, 0); err != nil {
		return 0, err
	}
	be := binary.BigEndian
	g, err := readXFSGeometry(r)
	if err != nil {
		return 0, err
	}
	logstart := be.Uint64(sb[48:])
	if logstart == 0 {
		return 0, fmt.Errorf("the file system has an external log: %w", ErrNotNormalized)
	}
	mask := uint64(1)<<g.agBlkLog - 1
	blk := (logstart>>g.agBlkLog)*uint64(g.agBlocks) + logstart&mask
	head := make([]byte, 8)
	if _, err := r.ReadAt(head, int64(blk)*int64(g.blockSize)); err != nil {
		return 0, fmt.Errorf("reading the log: %w", err)
	}
	// A record header starts with its magic, then the cycle; any other
	// sector of the log starts with the cycle stamp.
	c := be.Uint32(head)
	if c == 0xfeedbabe {
		c = be.Uint32(head[4:])
	}
	if c == 0 || c > 1<<30 {
		return 0, fmt.Errorf("log cycle %d is implausible", c)
	}
	return c, nil
}

// FormatXFSLog rewrites the (cleanly unmounted) log of the XFS file system
// in file p with xfs_db, three cycles above the current one, so every LSN
// the metadata holds is behind the log head (what xfs_repair does).
func FormatXFSLog(ctx context.Context, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	c, err := logCycle(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	cmd := fmt.Sprintf("logformat -c %d", c+3)
	out, err := exec.CommandContext(ctx, "xfs_db", "-x", "-c", cmd, p).CombinedOutput()
	if errors.Is(err, exec.ErrNotFound) {
		return errors.New("xfs_db is needed: apt-get install xfsprogs")
	}
	if err != nil {
		return fmt.Errorf("xfs_db %s: %w: %s", cmd, err, out)
	}
	return nil
}
