// Package archive owns the tar.zst format shared by package tarballs and bundles:
// a deterministic writer (sorted entries, uid/gid 0, fixed mtime, no atime/ctime,
// single-threaded zstd at a fixed level), a validating reader that refuses hostile
// entries (absolute or ".." paths, writes through symlinks, escaping symlinks,
// hardlinks to anything but an earlier regular file), and a safe extractor.
package archive
