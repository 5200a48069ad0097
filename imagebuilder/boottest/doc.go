// Package boottest boots cluster host images in QEMU and asserts, from
// outside the guest, that they came up: firstboot joined, no systemd unit
// failed, the join check passes from the cluster's side, the user's own
// checks pass inside the guest and the expected console lines appeared. It
// is the engine of `imagebuilder test` and of the project's own boot tests.
//
// Every VM boots through a copy-on-write overlay (the image is never
// written unless Spec.Persistent says so), with restricted user-mode
// networking. Several nodes share a second NIC on an Ethernet hub that the
// harness runs on loopback (qemu.Hub); each node's address on it is set by
// a systemd credential (tmpfiles.extra writes a systemd-networkd .network
// file matching the NIC's MAC before networkd starts), so no image needs to
// know it is under test.
//
// Commands run in the guest through a virtio-serial port
// (org.imagebuilder.test) that the harness adds to each VM: the image's
// cluster-testd.path starts "cluster-firstboot testd" only when that port
// exists, and it runs each command with /bin/sh and returns the exit code
// and output. No SSH keys or network access to the guest are needed.
//
// Timings come from console markers stamped as the lines arrive: firmware
// (QEMU start to the kernel's first line), kernel (to systemd), userspace
// (to ip-detect starting), firstboot (to the detected IP) and join (to the
// joined line).
package boottest
