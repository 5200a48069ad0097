// Package overlay owns applying tar streams safely onto a root and the on-host
// layout that the bundle implies: where the bundle lands (the prefix), how its
// systemd units are linked into /etc/systemd/system, and which role is baked.
//
// A Tree is a staging directory plus the metadata the streams declared for
// every path in it (owner, mode, device numbers, xattrs). The directory holds
// contents only; ownership and special files are never taken from whoever ran
// the build, so image writers read the truth from Tree.Entries.
package overlay
