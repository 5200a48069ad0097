// Package disk writes bootable disk images from an overlay.Tree without root
// privileges, loop devices or mounts.
//
// WriteRaw lays out a GPT disk (go-diskfs) with an EFI system partition
// (FAT32, go-diskfs) that holds systemd-boot and a Boot Loader Specification
// entry for the tree's newest kernel, and an ext4 root partition (type
// "Linux root x86-64", so systemd's gpt-auto finds it) built by
// `mkfs.ext4 -d` from the tree's staging directory. Ownership, modes,
// setuid bits, device nodes, fifos, xattrs and timestamps are then made to
// match the tree's Entries with one `debugfs -w -f` run, because the staging
// directory cannot hold them for a build that does not run as root.
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
