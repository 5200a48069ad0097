// Package qemutests holds the boot tests: real images, built by the real
// pipeline from the reference packages, the example config and a Debian
// base, booted in QEMU (OVMF, TCG unless KVM works) with restricted
// networking and asserted from the serial console.
//
// They need the Debian base tarball: `make test` builds it (cached) and
// passes its path in IMAGEBUILDER_BASE_TAR.
package qemutests
