// Package base turns every kind of --base into an uncompressed root file
// system tar stream and a content digest. The stream is always applied with
// overlay.Apply, which refuses entries that would escape the root; the
// readers here never write the base's entries to disk themselves (OCI
// flattening works on streams, disk images are read, not mounted).
//
// References (Open):
//
//	PATH, tar:PATH            rootfs tarball, plain, gzip or zstd (sniffed)
//	PATH, dir:PATH            a directory holding a root file system
//	oci:PATH[:TAG]            an OCI image layout directory
//	docker-archive:PATH[:TAG] a `docker save` archive
//	docker://REF, registry://REF  an image in a registry (linux/amd64)
//	PATH, raw:PATH            a raw disk image (GPT or MBR, ext4 root)
//	PATH, qcow2:PATH          a qcow2 disk image (converted with qemu-img)
//
// A bare PATH is sniffed: a directory, a qcow2 header, a tar (or gzip/zstd)
// header, else a partition table.
//
// Digests (Base.Digest, "sha256:<hex>"), the same inputs always giving the
// same digest:
//
//	tar, raw, qcow2  SHA-256 of the file's bytes, as given
//	dir              SHA-256 of the tar stream Open makes of it: entries in
//	                 path order, with type, mode, owner, xattrs, link
//	                 targets and contents, mtimes zeroed
//	oci, docker-archive, registry
//	                 the image's config digest (the image ID), which names
//	                 every layer's uncompressed content (diff_ids): the same
//	                 image has the same digest from a layout, an archive or
//	                 a registry
package base
