// Package qemu runs x86-64 virtual machines for boot tests and appliance
// work: UEFI firmware (OVMF) with a per-VM copy of its variable store, a
// disk that can be booted through a throw-away qcow2 overlay so the image
// stays untouched, systemd credentials passed through SMBIOS, user-mode
// networking that is always restrict=on (the guest reaches nothing outside
// QEMU except the forwards asked for), and the serial console captured to a
// file that Expect scans.
//
// KVM is opt-in: Accel "auto" runs ProbeKVM, a bounded firmware boot under
// -accel kvm, and falls back to TCG when it fails (on machines where /dev/kvm
// exists but guests hang or abort).
package qemu
