package genconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultPrefix is where the bundle lands on hosts unless config says otherwise.
const DefaultPrefix = "/opt/cluster"

// Config is config.yaml as the user wrote it.
type Config struct {
	ClusterName     string   `yaml:"cluster_name"`
	Prefix          string   `yaml:"prefix"`
	MasterDiscovery string   `yaml:"master_discovery"`
	MasterList      []string `yaml:"master_list"`
	IPDetectPath    string   `yaml:"ip_detect_path"`
	IPDetectTimeout string   `yaml:"ip_detect_timeout"`
	JoinTimeout     string   `yaml:"join_timeout"`
	Resolvers       []string `yaml:"resolvers"`
}

// Problem is one thing wrong with the configuration.
type Problem struct {
	Field string // "master_list[2]", "ip_detect_path", or a file name
	Msg   string
}

// Report collects every problem found, so a user fixes them in one go.
type Report struct {
	File     string
	Problems []Problem
}

func (r *Report) add(field, format string, args ...any) {
	r.Problems = append(r.Problems, Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Err returns the report as an error, or nil when there are no problems.
func (r *Report) Err() error {
	if len(r.Problems) == 0 {
		return nil
	}
	return r
}

func (r *Report) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problem(s):", r.File, len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "\n  %s: %s", p.Field, p.Msg)
	}
	return b.String()
}

var unknownFieldRE = regexp.MustCompile(`^line (\d+): field (\S+) not found`)

const knownKeys = "cluster_name, prefix, master_discovery, master_list, ip_detect_path, ip_detect_timeout, join_timeout, resolvers"

var clusterNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Resolved is a validated configuration with defaults applied.
type Resolved struct {
	ClusterName     string
	Prefix          string
	MasterList      []netip.Addr
	IPDetect        []byte
	IPDetectPath    string // where it was read from
	IPDetectTimeout time.Duration
	JoinTimeout     time.Duration
	Resolvers       []netip.Addr
}

// Load reads and validates config.yaml; ip_detect_path is relative to the
// config file's folder. Every problem is reported at once.
func Load(configPath string) (*Resolved, error) {
	data, err := os.ReadFile(configPath)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(configPath, data, os.ReadFile)
}

// Parse validates config bytes; readFile reads the ip-detect script.
func Parse(configPath string, data []byte, readFile func(string) ([]byte, error)) (*Resolved, error) {
	rep := &Report{File: configPath}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			rep.add("(file)", "is empty; required: cluster_name, master_list")
			return nil, rep
		}
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			rep.add("(yaml)", "%s", strings.TrimPrefix(err.Error(), "yaml: "))
			return nil, rep
		}
		onlyUnknown := true
		for _, e := range te.Errors {
			if m := unknownFieldRE.FindStringSubmatch(e); m != nil {
				rep.add(m[2], "line %s: unknown key (known keys: %s)", m[1], knownKeys)
				continue
			}
			onlyUnknown = false
			rep.add("(yaml)", "%s", e)
		}
		if !onlyUnknown {
			return nil, rep
		}
		// Unknown keys are reported; validate the known ones too, so every
		// problem shows up in one run.
		c = Config{}
		if err := yaml.Unmarshal(data, &c); err != nil {
			return nil, rep
		}
	}
	res := &Resolved{ClusterName: c.ClusterName, Prefix: c.Prefix}
	if c.ClusterName == "" {
		rep.add("cluster_name", "required: a DNS label such as \"prod-eu1\"")
	} else if !clusterNameRE.MatchString(c.ClusterName) {
		rep.add("cluster_name", "%q is not a DNS label (lowercase letters, digits and '-', at most 63)", c.ClusterName)
	}
	if res.Prefix == "" {
		res.Prefix = DefaultPrefix
	}
	if !path.IsAbs(res.Prefix) || path.Clean(res.Prefix) != res.Prefix || res.Prefix == "/" || strings.ContainsAny(res.Prefix, " \t\n\"'$\\") {
		rep.add("prefix", "%q must be a clean absolute path below / without spaces or quotes", c.Prefix)
	}
	switch c.MasterDiscovery {
	case "", "static":
	default:
		rep.add("master_discovery", "%q is not supported; use \"static\"", c.MasterDiscovery)
	}
	if len(c.MasterList) == 0 {
		rep.add("master_list", "required: the IP addresses of the masters (static discovery)")
	}
	seen := map[netip.Addr]int{}
	for i, s := range c.MasterList {
		f := fmt.Sprintf("master_list[%d]", i)
		a, err := netip.ParseAddr(s)
		if err != nil {
			rep.add(f, "%q is not an IP address", s)
			continue
		}
		if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
			rep.add(f, "%s cannot be a master address (unspecified, multicast or loopback)", s)
		}
		if j, dup := seen[a]; dup {
			rep.add(f, "%s repeats master_list[%d]", s, j)
		}
		seen[a] = i
		res.MasterList = append(res.MasterList, a)
	}
	if n := len(c.MasterList); n > 0 && n%2 == 0 {
		rep.add("master_list", "%d masters: use an odd number (1, 3, 5) so a quorum survives a failure", n)
	}
	for i, s := range c.Resolvers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			rep.add(fmt.Sprintf("resolvers[%d]", i), "%q is not an IP address", s)
			continue
		}
		res.Resolvers = append(res.Resolvers, a)
	}
	res.JoinTimeout = duration(rep, "join_timeout", c.JoinTimeout, 15*time.Minute)
	res.IPDetectTimeout = duration(rep, "ip_detect_timeout", c.IPDetectTimeout, 30*time.Second)

	ipd := c.IPDetectPath
	if ipd == "" {
		ipd = "ip-detect"
	}
	if !filepath.IsAbs(ipd) {
		ipd = filepath.Join(filepath.Dir(configPath), ipd)
	}
	res.IPDetectPath = ipd
	script, err := readFile(ipd)
	switch {
	case err != nil:
		rep.add("ip_detect_path", "cannot read the ip-detect script %s: %v", ipd, unwrapPathErr(err))
	case !bytes.HasPrefix(script, []byte("#!")):
		rep.add("ip_detect_path", "%s has no shebang line (e.g. #!/bin/sh); hosts could not run it", ipd)
	case len(script) > 64<<10:
		rep.add("ip_detect_path", "%s is %d bytes; an ip-detect script is expected to be small (<64 KiB)", ipd, len(script))
	default:
		res.IPDetect = script
	}
	if err := rep.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

func duration(rep *Report, field, s string, def time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		rep.add(field, "%q is not a positive duration such as \"90s\" or \"15m\"", s)
		return def
	}
	if d < time.Second {
		rep.add(field, "%q is below one second", s)
	}
	return d
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
