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
// With Options.Hygiene (what `imagebuilder build --in-place` uses, see
// imagebuilder/build/inplace.go) the appliance also does the part of the
// distro hygiene that must see the root: machine-id by the root's systemd
// version, SSH host keys, logs, caches, build leftovers, resolv.conf; and
// prints the root's os-release, from which the build detects the
// distribution. The build machine makes the rest of the overlay (bundle,
// unit links, role, fixups that are added files).
//
// Not done: LVM roots (the appliance looks for XFS or ext4 on the disk's
// partitions only), and the family-specific fixups (network stack,
// cloud-init, kernel exposure), which a vendor image keeps as its own.
package inplace
