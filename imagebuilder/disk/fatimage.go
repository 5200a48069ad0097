package disk

import (
	"context"
	"fmt"
	"os"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend/file"
)

// WriteFATImage writes a partitionless FAT32 filesystem image of size bytes
// (at least 40 MiB) to out, holding files (absolute FAT path → host file),
// with volume serial and every time fixed, so the same files give the same
// bytes. The installer ISO's El Torito EFI image is one.
func WriteFATImage(ctx context.Context, out string, size int64, files map[string]string, serial uint32, epoch int64) error {
	if size < 40*mib {
		return fmt.Errorf("FAT image of %d MiB: FAT32 needs at least 40 MiB", size/mib)
	}
	var ef []espFile
	for p, src := range files {
		ef = append(ef, espFile{Path: p, Src: src})
	}
	return writeAtomic(out, true, func(f *os.File) error {
		if err := f.Truncate(roundUp(size, mib)); err != nil {
			return err
		}
		d, err := diskfs.OpenBackend(file.New(f, false), diskfs.WithSectorSize(diskfs.SectorSize512))
		if err != nil {
			return fmt.Errorf("opening FAT image: %w", err)
		}
		if err := writeESP(ctx, d, 0, ef); err != nil {
			return err
		}
		if err := normalizeFAT32(f, 0, serial, time.Unix(epoch, 0)); err != nil {
			return fmt.Errorf("normalizing FAT image: %w", err)
		}
		return nil
	})
}
