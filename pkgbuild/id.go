package pkgbuild

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
)

// BuilderVersion is part of every package id: bump it whenever a change to the
// builder (sandbox, environment, normalisation) can change package output.
const BuilderVersion = "imagebuilder-pkgbuild/4"

// idHashLen is how many hex digits of the sha256 a package id keeps.
const idHashLen = 32

// SourceDigest identifies the content of one source.
type SourceDigest struct {
	Kind string `json:"kind"`
	// Digest is the sha256 of the fetched file (url, url_extract), the tree
	// hash of the directory (dir), the commit id (git), or the hash over
	// module, version, packages and go.sum (go_module).
	Digest string `json:"digest"`
	// URL is where the source came from, as buildinfo.json gives it: the URL
	// of url, url_extract and git sources, module@version of go_module sources.
	URL string `json:"url,omitempty"`
}

// idInputs is everything a package id is computed over.
type idInputs struct {
	name            string
	buildInfo       []byte
	script          []byte
	sources         map[string]SourceDigest
	requires        map[string]string // name -> id
	prefix          string
	sourceDateEpoch int64
}

// packageID is <name>--<hash>, the hash over a length-prefixed encoding of the
// inputs in a fixed order, so no two different inputs share an encoding.
func packageID(in idInputs) string {
	h := sha256.New()
	field(h, "builder", BuilderVersion)
	field(h, "name", in.name)
	field(h, "prefix", in.prefix)
	field(h, "source_date_epoch", strconv.FormatInt(in.sourceDateEpoch, 10))
	field(h, "buildinfo.json", string(in.buildInfo))
	field(h, "build", string(in.script))
	for _, n := range sortedKeys(in.sources) {
		s := in.sources[n]
		field(h, "source", n)
		field(h, "kind", s.Kind)
		field(h, "digest", s.Digest)
	}
	for _, n := range sortedKeys(in.requires) {
		field(h, "require", n)
		field(h, "id", in.requires[n])
	}
	return in.name + "--" + hex.EncodeToString(h.Sum(nil))[:idHashLen]
}

func field(h hash.Hash, key, val string) {
	fmt.Fprintf(h, "%s %d:%s\n", key, len(val), val)
}
