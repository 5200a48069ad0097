// Package disk writes bootable disk images from an overlay.Tree without root
// privileges, loop devices or mounts.
//
// A Layer (BuildLayer) is a base root filesystem made once: `mkfs.ext4 -d`
// from a tree's staging directory, then one `debugfs -w -f` run that makes
// ownership, modes, setuid bits, device nodes, fifos, xattrs and timestamps
// match the tree's Entries (the staging directory cannot hold them for a
// build that does not run as root), plus the tree's kernel, initrd and
// entries. WriteRawLayered copies a layer into a new image (its sparse
// digest checked on the way), grows it with resize2fs, and applies with one
// more debugfs run what a build changed on top of the base (planDelta: the
// bundle, unit links, fstab), so a base is staged and formatted once for
// every image made from it. The root filesystem is finished alone at the
// start of the file and moved to its partition with
// FALLOC_FL_INSERT_RANGE (no data moves; a copy where the filesystem lacks
// it). Then come the GPT (go-diskfs), an EFI system partition (FAT32,
// go-diskfs) holding systemd-boot and a Boot Loader Specification entry for
// the layer's kernel, and with BIOS GRUB's boot.img and core.img. The root
// partition has type "Linux root x86-64", so systemd's gpt-auto finds it.
// WriteRaw is the same path on a layer made from the whole tree in a
// scratch folder.
//
// Every identifier in the image (disk GUID, partition GUIDs, filesystem UUID,
// ext4 hash seed, FAT volume id) comes from PlanUUIDs(Options.Seed), and every
// timestamp from Options.SourceDateEpoch, so the same tree and seed give the
// same bytes. Callers plan the UUIDs first to write /etc/fstab into the tree.
//
// ConvertQcow2 turns a raw image into qcow2 with qemu-img. Final files are
// written to a temporary name in the destination directory, synced and
// renamed, so an error or a cancelled context never leaves a partial image.
package disk
