package genconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultPrefix is where the bundle lands on hosts unless config says otherwise.
const DefaultPrefix = "/opt/cluster"

// Config is config.yaml as the user wrote it. Every field is documented in
// schema/README.md and described by schema/config.schema.json; a test keeps
// the three in agreement.
type Config struct {
	ClusterName        string            `yaml:"cluster_name"`
	Prefix             string            `yaml:"prefix"`
	BootstrapURL       string            `yaml:"bootstrap_url"`
	MasterDiscovery    string            `yaml:"master_discovery"`
	MasterList         []string          `yaml:"master_list"`
	Resolvers          []string          `yaml:"resolvers"`
	DNSSearch          []string          `yaml:"dns_search"`
	NTPServers         []string          `yaml:"ntp_servers"`
	IPDetectPath       string            `yaml:"ip_detect_path"`
	IPDetectPublicPath string            `yaml:"ip_detect_public_path"`
	IPDetectTimeout    string            `yaml:"ip_detect_timeout"`
	JoinTimeout        string            `yaml:"join_timeout"`
	BundleCompression  string            `yaml:"bundle_compression"`
	Secrets            map[string]Secret `yaml:"secrets"`
	TemplateVars       map[string]string `yaml:"template_vars"`
}

// Compression of the cluster bundle.
const (
	CompressionZstd = "zstd"
	CompressionGzip = "gzip"
)

// Problem is one thing wrong with the configuration.
type Problem struct {
	Field string // "master_list[2]", "ip_detect_path", or a file name
	Msg   string
	Hint  string // how to fix it; may be empty
}

// Report collects every problem found, so a user fixes them in one go.
type Report struct {
	File     string
	Problems []Problem
}

func (r *Report) add(field, format string, args ...any) {
	r.Problems = append(r.Problems, Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// hint attaches a fix to the last problem added.
func (r *Report) hint(format string, args ...any) {
	r.Problems[len(r.Problems)-1].Hint = fmt.Sprintf(format, args...)
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
		if p.Hint != "" {
			fmt.Fprintf(&b, "\n    hint: %s", p.Hint)
		}
	}
	return b.String()
}

var unknownFieldRE = regexp.MustCompile(`^line (\d+): field (\S+) not found`)

// KnownKeys are the top-level keys of config.yaml, in struct order.
func KnownKeys() []string {
	t := reflect.TypeOf(Config{})
	keys := make([]string, t.NumField())
	for i := range keys {
		keys[i] = strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
	}
	return keys
}

var (
	clusterNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	hostLabelRE   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	varNameRE     = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	backtickRE    = regexp.MustCompile("`[^`]*`")
)

// Resolved is a validated configuration with defaults applied.
type Resolved struct {
	ClusterName       string
	Prefix            string
	BootstrapURL      string // without a trailing slash; may be empty
	MasterDiscovery   string
	MasterList        []netip.Addr
	Resolvers         []netip.Addr
	DNSSearch         []string
	NTPServers        []string
	IPDetect          []byte
	IPDetectPath      string // where it was read from
	IPDetectPublic    []byte // nil when not configured
	IPDetectPublicSrc string
	IPDetectTimeout   time.Duration
	JoinTimeout       time.Duration
	BundleCompression string
	Secrets           map[string]SecretValue
	TemplateVars      map[string]string
}

// Sources is how Parse reaches files and the environment (ip-detect
// scripts, secrets given as file: or env:). OSSources uses the real ones.
type Sources struct {
	ReadFile  func(string) ([]byte, error)
	Stat      func(string) (fs.FileInfo, error)
	LookupEnv func(string) (string, bool)
	// IPDetect, when set, is the ip-detect script to use instead of the
	// one ip_detect_path names (the Packer builder's ip_detect option).
	IPDetect string
}

// OSSources reads the real file system and environment.
func OSSources() Sources {
	return Sources{ReadFile: os.ReadFile, Stat: os.Stat, LookupEnv: os.LookupEnv}
}

// Load reads and validates config.yaml; relative paths in it are relative to
// the config file's folder. Every problem is reported at once.
func Load(configPath string) (*Resolved, error) {
	data, err := os.ReadFile(configPath)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(configPath, data, OSSources())
}

// Parse validates config bytes, reading the files it names through src.
func Parse(configPath string, data []byte, src Sources) (*Resolved, error) {
	rep := &Report{File: configPath}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			rep.add("(file)", "is empty; required: cluster_name, master_list")
			rep.hint("start from examples/config.yaml")
			return nil, rep
		}
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			rep.add("(yaml)", "%s", strings.TrimPrefix(err.Error(), "yaml: "))
			rep.hint("fix the YAML syntax first (indentation, a missing ':' or an unclosed quote)")
			return nil, rep
		}
		onlyUnknown := true
		for _, e := range te.Errors {
			if m := unknownFieldRE.FindStringSubmatch(e); m != nil {
				rep.add(m[2], "line %s: unknown key", m[1])
				rep.hint("known keys: %s (see genconf/schema/README.md)", strings.Join(KnownKeys(), ", "))
				continue
			}
			onlyUnknown = false
			if strings.Contains(e, "Secret") {
				e = backtickRE.ReplaceAllString(e, redacted)
			}
			rep.add("(yaml)", "%s", e)
			rep.hint("check the value's type against genconf/schema/README.md (a list needs [a, b] or '- ' items)")
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
	dir := filepath.Dir(configPath)
	res := &Resolved{ClusterName: c.ClusterName, Prefix: c.Prefix, MasterDiscovery: "static"}
	if c.ClusterName == "" {
		rep.add("cluster_name", "required")
		rep.hint("a DNS label such as \"prod-eu1\"")
	} else if !clusterNameRE.MatchString(c.ClusterName) {
		rep.add("cluster_name", "%q is not a DNS label", c.ClusterName)
		rep.hint("lowercase letters, digits and '-', at most 63, not starting or ending with '-'")
	}
	if res.Prefix == "" {
		res.Prefix = DefaultPrefix
	}
	if !path.IsAbs(res.Prefix) || path.Clean(res.Prefix) != res.Prefix || res.Prefix == "/" || strings.ContainsAny(res.Prefix, " \t\n\"'$\\`") {
		rep.add("prefix", "%q must be a clean absolute path below / without spaces or quotes", c.Prefix)
		rep.hint("for example /opt/cluster (the default)")
	} else if reservedPrefix(res.Prefix) {
		rep.add("prefix", "%q is a system folder", res.Prefix)
		rep.hint("use a folder of its own such as /opt/cluster; install.sh swaps the whole prefix on upgrade")
	}
	res.BootstrapURL = checkURL(rep, c.BootstrapURL)
	switch c.MasterDiscovery {
	case "", "static":
	default:
		rep.add("master_discovery", "%q is not supported", c.MasterDiscovery)
		rep.hint("use \"static\" and list the masters in master_list")
	}
	res.MasterList = masters(rep, c.MasterList)
	for i, s := range c.Resolvers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			rep.add(fmt.Sprintf("resolvers[%d]", i), "%q is not an IP address", s)
			rep.hint("resolvers are DNS servers by address, e.g. 10.0.0.2")
			continue
		}
		res.Resolvers = append(res.Resolvers, a)
	}
	res.DNSSearch = dnsSearch(rep, c.DNSSearch)
	for i, s := range c.NTPServers {
		if _, err := netip.ParseAddr(s); err != nil && !isHostname(s) {
			rep.add(fmt.Sprintf("ntp_servers[%d]", i), "%q is neither an IP address nor a host name", s)
			rep.hint("e.g. 10.0.0.5 or ntp1.example.internal")
			continue
		}
		res.NTPServers = append(res.NTPServers, s)
	}
	res.JoinTimeout = duration(rep, "join_timeout", c.JoinTimeout, 15*time.Minute)
	res.IPDetectTimeout = duration(rep, "ip_detect_timeout", c.IPDetectTimeout, 30*time.Second)
	switch c.BundleCompression {
	case "", CompressionZstd:
		res.BundleCompression = CompressionZstd
	case CompressionGzip:
		res.BundleCompression = CompressionGzip
	default:
		rep.add("bundle_compression", "%q is not supported", c.BundleCompression)
		rep.hint("use \"zstd\" (default) or \"gzip\" for hosts without zstd")
	}

	ipd := c.IPDetectPath
	if ipd == "" {
		ipd = "ip-detect"
	}
	res.IPDetectPath = relTo(dir, ipd)
	if src.IPDetect != "" {
		res.IPDetectPath = src.IPDetect
	}
	res.IPDetect = script(rep, "ip_detect_path", res.IPDetectPath, src)
	if c.IPDetectPublicPath != "" {
		res.IPDetectPublicSrc = relTo(dir, c.IPDetectPublicPath)
		res.IPDetectPublic = script(rep, "ip_detect_public_path", res.IPDetectPublicSrc, src)
	}
	res.Secrets = secrets(rep, dir, c.Secrets, src)
	if len(c.TemplateVars) > 0 {
		res.TemplateVars = map[string]string{}
		for _, k := range sortedKeys(c.TemplateVars) {
			if !varNameRE.MatchString(k) {
				rep.add("template_vars."+k, "%q is not a variable name", k)
				rep.hint("lowercase letters, digits and '_', starting with a letter; templates use it as {{.vars.%s}}", strings.ToLower(k))
				continue
			}
			res.TemplateVars[k] = c.TemplateVars[k]
		}
	}
	if err := rep.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

func relTo(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// reservedPrefix refuses prefixes that are, or contain, system folders.
func reservedPrefix(p string) bool {
	switch p {
	case "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc", "/root",
		"/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/usr/local", "/var/lib":
		return true
	}
	return false
}

func checkURL(rep *Report, s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		rep.add("bootstrap_url", "%q is not a URL: %v", s, errors.Unwrap(err))
	case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file":
		rep.add("bootstrap_url", "%q: scheme %q is not supported", s, u.Scheme)
	case u.Scheme != "file" && u.Host == "":
		rep.add("bootstrap_url", "%q has no host", s)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		rep.add("bootstrap_url", "%q must not carry a query, fragment or user info", s)
	case strings.ContainsAny(s, " '\"`$\\\n\t"):
		rep.add("bootstrap_url", "%q contains a space, quote, '$' or backslash", s)
	default:
		return strings.TrimRight(s, "/")
	}
	rep.hint("the http(s) folder that serves genconf's output, e.g. http://10.0.0.2:8080/serve; install.sh fetches the bundle from there")
	return ""
}

func masters(rep *Report, list []string) []netip.Addr {
	if len(list) == 0 {
		rep.add("master_list", "required")
		rep.hint("the IP addresses of the masters (static discovery), e.g. [10.0.0.11, 10.0.0.12, 10.0.0.13]")
	}
	var out []netip.Addr
	seen := map[netip.Addr]int{}
	for i, s := range list {
		f := fmt.Sprintf("master_list[%d]", i)
		a, err := netip.ParseAddr(s)
		if err != nil {
			rep.add(f, "%q is not an IP address", s)
			rep.hint("masters are listed by IP (IPv4 or IPv6), not by name")
			continue
		}
		if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
			rep.add(f, "%s cannot be a master address (unspecified, multicast or loopback)", s)
			rep.hint("use the address the other hosts reach the master at")
		}
		if j, dup := seen[a]; dup {
			rep.add(f, "%s repeats master_list[%d]", s, j)
			rep.hint("list each master once")
		}
		seen[a] = i
		out = append(out, a)
	}
	if n := len(list); n > 0 && n%2 == 0 {
		rep.add("master_list", "%d masters: use an odd number", n)
		rep.hint("1, 3 or 5 masters, so a quorum survives a failure")
	}
	return out
}

func isHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !hostLabelRE.MatchString(l) {
			return false
		}
	}
	return true
}

func dnsSearch(rep *Report, list []string) []string {
	var out []string
	total := 0
	for i, s := range list {
		if !isHostname(s) {
			rep.add(fmt.Sprintf("dns_search[%d]", i), "%q is not a domain name", s)
			rep.hint("e.g. cluster.internal; labels of letters, digits and '-'")
			continue
		}
		total += len(s) + 1
		out = append(out, strings.TrimSuffix(s, "."))
	}
	if len(list) > 6 || total > 256 {
		rep.add("dns_search", "%d domains, %d characters: too many for resolv.conf", len(list), total)
		rep.hint("at most 6 domains and 256 characters (older glibc ignores the rest)")
	}
	return out
}

// script reads and checks an ip-detect script: readable, executable, with a
// shebang, small.
func script(rep *Report, field, p string, src Sources) []byte {
	data, err := src.ReadFile(p)
	if err != nil {
		rep.add(field, "cannot read the ip-detect script %s: %v", p, unwrapPathErr(err))
		rep.hint("the path is relative to config.yaml's folder; ip-detect prints this host's cluster IP (see examples/ip-detect)")
		return nil
	}
	ok := true
	if fi, err := src.Stat(p); err == nil && fi.Mode().Perm()&0o111 == 0 {
		rep.add(field, "%s is not executable (mode %04o)", p, fi.Mode().Perm())
		rep.hint("chmod +x %s", p)
		ok = false
	}
	switch {
	case !bytes.HasPrefix(data, []byte("#!")):
		rep.add(field, "%s has no shebang line; hosts could not run it", p)
		rep.hint("start it with #!/bin/sh (or another interpreter every host has)")
		ok = false
	case len(data) > 64<<10:
		rep.add(field, "%s is %d bytes; an ip-detect script is expected to be small", p, len(data))
		rep.hint("keep it below 64 KiB: it only prints one IP address")
		ok = false
	case bytes.IndexByte(data, 0) >= 0:
		rep.add(field, "%s contains NUL bytes; it must be a text script", p)
		rep.hint("point the field at the script, not at a binary")
		ok = false
	}
	if !ok {
		return nil
	}
	return data
}

func duration(rep *Report, field, s string, def time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		rep.add(field, "%q is not a positive duration", s)
		rep.hint("write it like \"90s\", \"15m\" or \"1h\"")
		return def
	}
	if d < time.Second {
		rep.add(field, "%q is below one second", s)
		rep.hint("hosts count in whole seconds; use at least \"1s\"")
	} else if d > 24*time.Hour {
		rep.add(field, "%q is longer than a day", s)
		rep.hint("use at most \"24h\"")
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

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
