// Package inplace applies an overlay to a vendor disk image without
// rewriting it: the image keeps its partitions, boot loader and file system
// (XFS or ext4). A small appliance VM does the work: the kernel of a base
// rootfs, an initramfs built here with cavaliergopher/cpio holding the
// static appliance (imagebuilder/inplace/appliance) as /init and the kernel
// modules it needs (virtio, XFS), the image as its first disk and the
// overlay tar as its second. The appliance mounts the image's root,
// extracts the overlay inside it (every path resolved with
// RESOLVE_IN_ROOT, so nothing lands outside and the vendor's symlinks are
// followed as on the host), writes /.autorelabel when SELinux is enforcing
// or permissive, and powers off. No root and no loop device is needed on the
// build machine.
//
// Not yet: wiring into `imagebuilder build` (making the overlay — bundle at
// the prefix, unit links, role, distro fixups — against a root the host
// cannot read, since XFS is only read inside the appliance), LVM roots, and
// booting a full vendor OS from an XFS image in the tests.
package inplace
