// Package distros owns what differs between base distribution families:
// detecting the family from /etc/os-release (ID, ID_LIKE, VERSION_ID) and
// the fixups each one needs before the image boots a cluster host:
// prerequisites (systemd, tar, a decompressor), the network stack
// (systemd-networkd on Debian, netplan on Ubuntu, NetworkManager on the RHEL
// family), SELinux relabelling, cloud-init, where the kernel lives, and the
// image hygiene every family gets.
//
// Adding a family is described in README.md beside this file.
package distros
