package pkgbuild

import (
	"fmt"
	"path"
)

// Package is a package of a Plan: its definition, source digests and id.
type Package struct {
	Name    string
	ID      string
	Def     *Definition
	Sources map[string]SourceDigest
	// Requires maps each direct requirement to its id.
	Requires map[string]string
	// Closure lists all requirements, transitively, sorted.
	Closure []string
}

// Plan is a closed set of packages with their ids, in build order.
type Plan struct {
	Prefix   string
	Order    []string
	Packages map[string]*Package
}

// OnHostPath is where package id lives on a host: <prefix>/packages/<id>.
func OnHostPath(prefix, id string) string { return path.Join(prefix, "packages", id) }

// Plan loads the named packages (all with no names) and their requirements and
// computes every id. It reads dir sources to hash them but fetches nothing.
func (b *Builder) Plan(names ...string) (*Plan, error) {
	set, err := LoadSet(b.opts.RepoRoot, b.opts.PackagesDir, names...)
	if err != nil {
		return nil, err
	}
	pl := &Plan{Prefix: b.opts.Prefix, Order: set.Order, Packages: map[string]*Package{}}
	for _, name := range set.Order {
		d := set.Defs[name]
		p := &Package{Name: name, Def: d, Sources: map[string]SourceDigest{}, Requires: map[string]string{}, Closure: set.closure(name)}
		for _, sn := range sortedKeys(d.Info.Sources) {
			s := d.Info.Sources[sn]
			switch s.Kind {
			case KindDir:
				sum, err := TreeDigest(d.DirSources[sn])
				if err != nil {
					return nil, fmt.Errorf("package %s: source %s: %w", name, sn, err)
				}
				p.Sources[sn] = SourceDigest{Kind: s.Kind, Digest: sum}
			case KindURL, KindURLExtract:
				p.Sources[sn] = SourceDigest{Kind: s.Kind, Digest: s.SHA256, URL: s.URL}
			case KindGoModule:
				p.Sources[sn] = SourceDigest{Kind: s.Kind, Digest: goModuleDigest(s, d.GoSums[sn]), URL: s.Module + "@" + s.Version}
			case KindGit:
				// The commit id names the tree.
				p.Sources[sn] = SourceDigest{Kind: s.Kind, Digest: s.Commit, URL: s.URL}
			}
		}
		for _, r := range d.Info.Requires {
			p.Requires[r] = pl.Packages[r].ID
		}
		p.ID = packageID(idInputs{
			name:            name,
			buildInfo:       d.BuildInfoJSON,
			script:          d.Script,
			sources:         p.Sources,
			requires:        p.Requires,
			prefix:          b.opts.Prefix,
			sourceDateEpoch: b.opts.SourceDateEpoch,
		})
		pl.Packages[name] = p
	}
	return pl, nil
}
