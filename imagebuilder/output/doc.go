// Package output writes the non-disk artifacts of a build from a staged
// overlay.Tree: a deterministic rootfs tar, an OCI image layout holding that
// tar as one layer, a PXE set (kernel + the whole root filesystem as an
// initramfs), and the bash-path export (cluster bundle + install.sh).
//
// Every writer is deterministic: entries in path order, owners and modes from
// the tree's entries (never from the build machine), every time the given
// epoch. Every artifact appears under its final name complete or not at all.
package output
