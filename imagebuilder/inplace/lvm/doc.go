// Package lvm reads (and, for test fixtures, writes) the LVM2 on-disk
// format far enough to map a logical volume: the physical volume label
// ("LABELONE", sector 0-3), the pv_header with its data and metadata
// areas, the metadata area header and the volume group's text metadata.
// It turns a logical volume's segments into device-mapper targets (linear
// and striped), which the in-place appliance loads with DM ioctls; nothing
// is ever written to a physical volume by the reader.
//
// Format reference: lib/format_text/layout.h and lib/label/label.h of LVM2
// (label_header, pv_header, mda_header, raw_locn; checksums are CRC32 with
// LVM's initial value 0xf597a6cf and no final inversion).
package lvm
