// Package archive owns the tar.zst format shared by package tarballs and bundles:
// a deterministic writer (sorted entries, uid/gid 0, fixed mtime, no atime/ctime,
// zstd frames at fixed levels, big files' content in frames of their own that
// can be copied between archives), a validating reader that refuses hostile
// entries (absolute or ".." paths, writes through symlinks, escaping symlinks,
// hardlinks to anything but an earlier regular file), a framed reader that
// records the frame layout, and a safe extractor.
package archive
