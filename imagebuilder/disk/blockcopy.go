package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// digestBlock is the unit of a sparse digest.
const digestBlock = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sparseDigest is the digest of a filesystem image that does not depend on
// how the host stored it: SHA-256 over, for each digestBlock-sized block
// that is not all zero, its index (8 bytes, big endian) and the CRC-32C of
// its bytes, then the file size. Holes and zero blocks add nothing. It
// guards a cached layer against corruption on disk (a cache the user owns,
// not an input from others): CRC-32C runs at memory speed, where SHA-256
// of every byte would cost a core for a third of a second per build.
func sparseDigest(ctx context.Context, src string) (string, error) {
	return copyBlocks(ctx, nil, 0, src)
}

// copyBlocks writes the non-zero blocks of the file at src into dst at
// offset off (dst is freshly truncated: zeros are there already) and returns
// the file's sparse digest, computed on the way by a second goroutine. dst
// may be nil to only hash.
func copyBlocks(ctx context.Context, dst io.WriterAt, off int64, src string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return "", err
	}
	size := fi.Size()

	type block struct {
		index int64
		buf   []byte
	}
	const inFlight = 8
	pool := make(chan []byte, inFlight)
	for range inFlight {
		pool <- make([]byte, digestBlock)
	}
	work := make(chan block, inFlight)
	sum := make(chan string, 1)
	go func() {
		h := sha256.New()
		var idx [12]byte
		for b := range work {
			binary.BigEndian.PutUint64(idx[:8], uint64(b.index))
			binary.BigEndian.PutUint32(idx[8:], crc32.Checksum(b.buf, castagnoli))
			h.Write(idx[:])
			pool <- b.buf[:cap(b.buf)]
		}
		idx = [12]byte{}
		binary.BigEndian.PutUint64(idx[:8], uint64(size))
		h.Write(idx[:8])
		sum <- hex.EncodeToString(h.Sum(nil))
	}()

	err = func() error {
		defer close(work)
		zero := make([]byte, digestBlock)
		fd := int(in.Fd())
		for pos := int64(0); pos < size; {
			if err := ctx.Err(); err != nil {
				return err
			}
			data, err := unix.Seek(fd, pos, unix.SEEK_DATA)
			if errors.Is(err, unix.ENXIO) {
				return nil // only a hole is left
			}
			if err != nil {
				data = pos // no SEEK_DATA: read everything
			}
			hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
			if err != nil {
				hole = size
			}
			// Whole blocks from the one holding data to the one holding
			// the hole's start; pos stays block aligned.
			for pos = max(pos, data/digestBlock*digestBlock); pos < hole; pos += digestBlock {
				buf := <-pool
				n := min(int64(digestBlock), size-pos)
				buf = buf[:n]
				if _, err := in.ReadAt(buf, pos); err != nil {
					return fmt.Errorf("reading %s at %d: %w", src, pos, err)
				}
				if bytes.Equal(buf, zero[:n]) {
					pool <- buf[:cap(buf)]
					continue
				}
				if dst != nil {
					if _, err := dst.WriteAt(buf, off+pos); err != nil {
						return err
					}
				}
				work <- block{index: pos / digestBlock, buf: buf}
			}
		}
		return nil
	}()
	digest := <-sum
	if err != nil {
		return "", err
	}
	return digest, nil
}
