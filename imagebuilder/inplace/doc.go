// Package inplace applies an overlay to a vendor disk image without
// rewriting it: the image keeps its partitions, boot loader, LVM metadata
// and file system (XFS or ext4). A small appliance VM does the work: the
// kernel of a base rootfs, an initramfs built here with cavaliergopher/cpio
// holding the static appliance (imagebuilder/inplace/appliance) as /init
// and the kernel modules it needs (virtio, XFS, ext4, dm-mod), the image
// as its first disk and the overlay tar as its second. No root and no loop
// device is needed on the build machine.
//
// The appliance finds the root: an XFS or ext4 file system holding an
// os-release, on a partition or on an LVM2 logical volume. For LVM it
// reads the PV labels and the volume group's text metadata itself
// (package lvm) and maps the logical volume's linear or striped segments
// with device-mapper ioctls; other segment types (thin, raid, mirror,
// cache...) are refused with their name. When several file systems hold
// an os-release, the logical volume named root, rootlv or lv_root wins;
// otherwise Options.Root ("VG/LV" or "vda3") must choose. The LVM metadata
// is only read, never written.
//
// `imagebuilder build --in-place` (imagebuilder/build/inplace.go) runs the
// appliance twice: Options.Skeleton writes the root's skeleton (entries
// with owners and modes; contents of /etc, /usr/lib/os-release and the
// dpkg status), on which the build runs the distro profile's fixups and
// installs the bundle exactly as the rebuild path does (ReadSkeleton);
// Skeleton.WriteChanges turns the difference into the overlay, whiteouts
// included, which the second run extracts with every path resolved with
// RESOLVE_IN_ROOT (nothing lands outside the root; the vendor's symlinks
// are followed as on the host). The appliance also writes /.autorelabel
// when the root enforces SELinux.
//
// Reproducibility (xfsnorm.go, reproducible.go): the appliance frees
// nothing until every overlay entry exists, so inode numbers do not depend
// on timing; MakeReproducible then gives the XFS inodes the run touched
// SOURCE_DATE_EPOCH timestamps, derived generation numbers and no LSN, and
// rewrites the log, so two builds of the same inputs are bit-identical.
// ext4 roots and striped logical volumes are not normalized.
package inplace
