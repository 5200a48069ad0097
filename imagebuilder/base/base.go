package base

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"imagebuilder/overlay"
	"imagebuilder/pkgbuild/atomicfile"
)

// Kind is the kind of a base input.
type Kind string

// Kinds of base inputs.
const (
	KindTar           Kind = "tar"
	KindDir           Kind = "dir"
	KindOCILayout     Kind = "oci"
	KindDockerArchive Kind = "docker-archive"
	KindRegistry      Kind = "registry"
	KindRaw           Kind = "raw"
	KindQcow2         Kind = "qcow2"
)

// Base is an opened base: its stream can be read as often as needed until
// Close.
type Base struct {
	// Ref is the reference as given; Kind what it was found to be.
	Ref  string
	Kind Kind
	// Digest is "sha256:<hex>" (see the package documentation).
	Digest string

	open    func(ctx context.Context) (io.ReadCloser, error)
	cleanup []func() error
}

// Tar returns the base's root file system as an uncompressed tar stream.
func (b *Base) Tar(ctx context.Context) (io.ReadCloser, error) { return b.open(ctx) }

// Apply stages the base into tree (at its root), through overlay.Apply's
// checks.
func (b *Base) Apply(ctx context.Context, tree *overlay.Tree) error {
	r, err := b.Tar(ctx)
	if err != nil {
		return err
	}
	err = tree.Apply(r, "", overlay.ApplyOptions{})
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("base %s: %w", b.Ref, err)
	}
	return nil
}

// Close removes what Open made (converted disk images).
func (b *Base) Close() error {
	var errs []error
	for i := len(b.cleanup) - 1; i >= 0; i-- {
		errs = append(errs, b.cleanup[i]())
	}
	b.cleanup = nil
	return errors.Join(errs...)
}

// Hex is the digest without its "sha256:" prefix.
func (b *Base) Hex() string { return strings.TrimPrefix(b.Digest, "sha256:") }

// Options tune OpenWith.
type Options struct {
	// FileDigest, when set, returns the hex sha256 of a local file base
	// (tarball, raw or qcow2 image) — a cache of digests keyed by the
	// file's identity; default: read the whole file.
	FileDigest func(path string) (string, error)
}

func (o Options) fileDigest(p string) (string, error) {
	if o.FileDigest != nil {
		return o.FileDigest(p)
	}
	return atomicfile.SHA256(p)
}

// Open resolves ref (see the package documentation) into a Base.
func Open(ctx context.Context, ref string, log *slog.Logger) (*Base, error) {
	return OpenWith(ctx, ref, log, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, ref string, log *slog.Logger, o Options) (*Base, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kind, target, err := Parse(ref)
	if err != nil {
		return nil, err
	}
	var b *Base
	switch kind {
	case KindTar:
		b, err = openTarFile(target, o)
	case KindDir:
		b, err = openDir(ctx, target)
	case KindOCILayout, KindDockerArchive, KindRegistry:
		b, err = openOCI(ctx, kind, target)
	case KindRaw, KindQcow2:
		b, err = openDisk(ctx, log, kind, target, o)
	}
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", ref, err)
	}
	b.Ref, b.Kind = ref, kind
	log.Info("base opened", "ref", ref, "kind", kind, "digest", b.Digest)
	return b, nil
}

// Parse splits ref into its kind and target, sniffing a bare path.
func Parse(ref string) (Kind, string, error) {
	if ref == "" {
		return "", "", errors.New("base: empty reference")
	}
	for _, p := range []struct {
		prefix string
		kind   Kind
	}{
		{"tar:", KindTar}, {"dir:", KindDir}, {"oci:", KindOCILayout},
		{"docker-archive:", KindDockerArchive}, {"docker://", KindRegistry},
		{"registry://", KindRegistry}, {"raw:", KindRaw}, {"qcow2:", KindQcow2},
	} {
		if rest, ok := strings.CutPrefix(ref, p.prefix); ok {
			if rest == "" {
				return "", "", fmt.Errorf("base %q: nothing after %q", ref, p.prefix)
			}
			return p.kind, rest, nil
		}
	}
	kind, err := sniff(ref)
	if err != nil {
		return "", "", fmt.Errorf("base %s: %w", ref, err)
	}
	return kind, ref, nil
}

// sniff tells the kind of a local path from what it holds.
func sniff(p string) (Kind, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if fi.IsDir() {
		if _, err := os.Stat(p + "/oci-layout"); err == nil {
			return KindOCILayout, nil
		}
		return KindDir, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch {
	case len(head) >= 4 && string(head[:4]) == "QFI\xfb":
		return KindQcow2, nil
	case hasPrefix(head, zstdMagic), hasPrefix(head, gzipMagic):
		return KindTar, nil
	case hasPrefix(head, []byte("\xfd7zXZ\x00")), hasPrefix(head, []byte("BZh")):
		return "", errors.New("xz and bzip2 tarballs are not supported: recompress it with zstd or gzip")
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return KindTar, nil
	case len(head) >= 512 && head[510] == 0x55 && head[511] == 0xaa:
		return KindRaw, nil
	}
	return "", errors.New("not a directory, tar (plain, gzip, zstd), qcow2 or partitioned disk image; name the kind with a prefix (oci:, docker-archive:, docker://, raw:, ...) if it is one")
}

func hasPrefix(b, p []byte) bool { return len(b) >= len(p) && string(b[:len(p)]) == string(p) }
