// Command bench builds the same host image (the Debian base + the reference
// cluster bundle, qcow2 out) four ways — imagebuilder (cold, and warm after a
// config-only change), a shell baseline, libguestfs and Packer's qemu builder —
// N times each, interleaved so the machine's noise falls on every way alike,
// boots each way's result once in QEMU until the host has joined its cluster,
// and prints a table of medians (min–max) with ratios; the same figures go to
// a JSON file under bench/results/. `make bench` runs it; see bench/README.md.
package main
