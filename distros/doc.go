// Package distros owns what differs between base distribution families:
// detecting the family from /etc/os-release and the fixups each one needs
// before the image boots a cluster host (network stack, first-boot hygiene).
//
// Adding a family: implement Profile, add it to Profiles, and give it a test
// with an os-release sample.
package distros
