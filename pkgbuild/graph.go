package pkgbuild

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Set is a closed set of package definitions: every requirement of a member is a
// member. Order lists them dependencies first (ties broken by name).
type Set struct {
	Defs  map[string]*Definition
	Order []string
}

// LoadSet loads the named packages and everything they require, transitively;
// with no names it loads every folder of packagesDir that has a buildinfo.json.
// Problems of all packages are reported together; a missing requirement and a
// dependency cycle (with its path) are errors.
func LoadSet(repoRoot, packagesDir string, names ...string) (*Set, error) {
	if len(names) == 0 {
		all, err := listPackages(packagesDir)
		if err != nil {
			return nil, err
		}
		names = all
	}
	s := &Set{Defs: map[string]*Definition{}}
	var errs []error
	queue := append([]string(nil), names...)
	requiredBy := map[string]string{}
	failed := map[string]bool{}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if s.Defs[name] != nil || failed[name] {
			continue
		}
		if by, ok := requiredBy[name]; ok {
			if _, err := os.Stat(filepath.Join(packagesDir, name, "buildinfo.json")); errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("package %s requires %s, which does not exist (no %s)", by, name, filepath.Join(packagesDir, name, "buildinfo.json")))
				failed[name] = true
				continue
			}
		}
		d, err := LoadDefinition(repoRoot, packagesDir, name)
		if err != nil {
			errs = append(errs, err)
			failed[name] = true
			continue
		}
		s.Defs[name] = d
		for _, r := range d.Info.Requires {
			if _, ok := requiredBy[r]; !ok {
				requiredBy[r] = name
			}
			queue = append(queue, r)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	order, err := topoOrder(s.Defs)
	if err != nil {
		return nil, err
	}
	s.Order = order
	return s, nil
}

func listPackages(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing packages: %w", err)
	}
	var names []string
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "buildinfo.json")); err == nil {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("listing packages: no */buildinfo.json in %s", dir)
	}
	return names, nil
}

// topoOrder returns the names dependencies first, or an error naming a cycle.
func topoOrder(defs map[string]*Definition) ([]string, error) {
	const (
		unvisited = iota
		active
		finished
	)
	state := map[string]int{}
	var order, stack []string
	var visit func(string) error
	visit = func(n string) error {
		switch state[n] {
		case finished:
			return nil
		case active:
			i := len(stack) - 1
			for stack[i] != n {
				i--
			}
			cycle := append(append([]string(nil), stack[i:]...), n)
			return fmt.Errorf("dependency cycle: %s", strings.Join(cycle, " -> "))
		}
		state[n] = active
		stack = append(stack, n)
		reqs := append([]string(nil), defs[n].Info.Requires...)
		sort.Strings(reqs)
		for _, r := range reqs {
			if err := visit(r); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = finished
		order = append(order, n)
		return nil
	}
	for _, n := range sortedKeys(defs) {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// closure returns the transitive requirements of name, sorted.
func (s *Set) closure(name string) []string {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(n string) {
		for _, r := range s.Defs[n].Info.Requires {
			if !seen[r] {
				seen[r] = true
				walk(r)
			}
		}
	}
	walk(name)
	return sortedKeys(seen)
}
