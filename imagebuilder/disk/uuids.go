package disk

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/google/uuid"
)

// uuidNamespace is the name-based (RFC 4122 version 5) namespace every
// identifier of an image is derived in. Changing it changes every image.
var uuidNamespace = uuid.MustParse("3c0b6d6e-51f4-4a43-9d0a-6f2a3e1b7c51")

// UUIDs are the identifiers of one image, all derived from its seed.
type UUIDs struct {
	// Disk is the GPT disk GUID.
	Disk string
	// ESPPart and RootPart are the GPT partition GUIDs (PARTUUID=).
	ESPPart  string
	RootPart string
	// BIOSPart is the GPT partition GUID of the BIOS boot partition.
	BIOSPart string
	// RootFS is the ext4 filesystem UUID (UUID= in fstab).
	RootFS string
	// RootHashSeed is the ext4 directory hash seed.
	RootHashSeed string
	// ESPVolumeID is the FAT volume serial in the form fstab and blkid use
	// ("1A2B-3C4D"); ESPSerial is the same number.
	ESPVolumeID string
	ESPSerial   uint32
}

// PlanUUIDs derives every identifier of an image from seed, so a caller can
// write /etc/fstab (or a kernel command line) before the disk exists, and the
// same seed always gives the same disk. The seed should be a content hash of
// what goes into the image; two images attached to one machine must not
// share a seed.
func PlanUUIDs(seed string) UUIDs {
	id := func(purpose string) string {
		return uuid.NewSHA1(uuidNamespace, []byte(purpose+"\x00"+seed)).String()
	}
	h := sha256.Sum256([]byte("esp-serial\x00" + seed))
	serial := binary.BigEndian.Uint32(h[:4])
	return UUIDs{
		Disk:         id("disk"),
		ESPPart:      id("esp-partition"),
		RootPart:     id("root-partition"),
		BIOSPart:     id("bios-boot-partition"),
		RootFS:       id("root-filesystem"),
		RootHashSeed: id("root-hash-seed"),
		ESPVolumeID:  fmt.Sprintf("%04X-%04X", serial>>16, serial&0xffff),
		ESPSerial:    serial,
	}
}

// Fstab returns /etc/fstab lines mounting the root filesystem and the EFI
// system partition (at espMount, e.g. "/boot/efi") by UUID. The ESP is
// mounted nofail: a host boots without it.
func (u UUIDs) Fstab(espMount string) string {
	return fmt.Sprintf("UUID=%s / ext4 defaults,errors=remount-ro 0 1\nUUID=%s %s vfat umask=0077,nofail 0 2\n",
		u.RootFS, u.ESPVolumeID, espMount)
}
