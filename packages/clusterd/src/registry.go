package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Member is one host known to a master.
type Member struct {
	IP       string    `json:"ip"`
	Role     string    `json:"role"`
	LastSeen time.Time `json:"last_seen"`
}

// registryFile is the persisted form of a registry.
type registryFile struct {
	Members []Member `json:"members"`
}

// Registry is the master's member list, kept in memory and persisted to a
// JSON file whenever membership (an IP or its role) changes.
type Registry struct {
	path string
	now  func() time.Time

	mu      sync.Mutex
	members map[string]Member
}

// OpenRegistry loads the registry persisted at path (a missing file is an
// empty registry). An empty path keeps the registry in memory only.
func OpenRegistry(path string, now func() time.Time) (*Registry, error) {
	r := &Registry{path: path, now: now, members: map[string]Member{}}
	if path == "" {
		return r, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading registry: %w", err)
	}
	var f registryFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("parsing registry %s: %w", path, err)
	}
	for _, m := range f.Members {
		ip, role, err := validMember(m.IP, m.Role)
		if err != nil {
			return nil, fmt.Errorf("registry %s: %w", path, err)
		}
		m.IP, m.Role = ip, role
		r.members[ip] = m
	}
	return r, nil
}

// Register records that ip with role is alive and returns the member and
// whether it is new (or changed its role).
func (r *Registry) Register(ip, role string) (Member, bool, error) {
	ip, role, err := validMember(ip, role)
	if err != nil {
		return Member{}, false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old, known := r.members[ip]
	m := Member{IP: ip, Role: role, LastSeen: r.now().UTC()}
	r.members[ip] = m
	if known && old.Role == role {
		return m, false, nil
	}
	if err := r.save(); err != nil {
		if known {
			r.members[ip] = old
		} else {
			delete(r.members, ip)
		}
		return Member{}, false, err
	}
	return m, true, nil
}

// List returns the members sorted by IP.
func (r *Registry) List() []Member {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sortedLocked()
}

func (r *Registry) sortedLocked() []Member {
	out := make([]Member, 0, len(r.members))
	for _, m := range r.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := netip.ParseAddr(out[i].IP)
		b, _ := netip.ParseAddr(out[j].IP)
		return a.Less(b)
	})
	return out
}

// save writes the registry atomically: temp file, fsync, rename, dir fsync.
func (r *Registry) save() (err error) {
	if r.path == "" {
		return nil
	}
	data, err := json.MarshalIndent(registryFile{Members: r.sortedLocked()}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding registry: %w", err)
	}
	dir := filepath.Dir(r.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".members-*.json")
	if err != nil {
		return fmt.Errorf("saving registry: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("saving registry: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("saving registry: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving registry: %w", err)
	}
	if err := os.Rename(tmp.Name(), r.path); err != nil {
		return fmt.Errorf("saving registry: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("saving registry: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("saving registry: syncing %s: %w", dir, err)
	}
	return nil
}

// validMember checks a registration and returns the canonical IP.
func validMember(ip, role string) (string, string, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() {
		return "", "", fmt.Errorf("invalid member IP %q", ip)
	}
	if !validRole(role) {
		return "", "", fmt.Errorf("invalid role %q: want master, agent or agent_public", role)
	}
	return a.Unmap().String(), role, nil
}

func validRole(r string) bool {
	switch r {
	case "master", "agent", "agent_public":
		return true
	}
	return false
}
