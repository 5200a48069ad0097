package agent

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"time"
)

// Defaults for cluster.env keys that genconf always writes; they apply only
// to a hand-made cluster.env.
const (
	defaultIPDetectTimeout = 30 * time.Second
	defaultJoinTimeout     = 30 * time.Minute
)

// clusterConfig is what the agent takes from cluster.env.
type clusterConfig struct {
	env      Env
	name     string
	ipDetect string
	// ipDetectInterp, when set, runs ipDetect through its #! interpreter
	// (the credential's copy lives on /run, which may be noexec).
	ipDetectInterp  []string
	ipDetectTimeout time.Duration
	joinTimeout     time.Duration
}

func (a *Agent) loadConfig() (clusterConfig, error) {
	env, err := ReadEnvFile(a.Paths.EnvFile)
	if err != nil {
		return clusterConfig{}, err
	}
	cfg := clusterConfig{
		env:             env,
		ipDetect:        filepath.Join(a.Paths.Prefix, "etc", "ip-detect"),
		ipDetectTimeout: defaultIPDetectTimeout,
		joinTimeout:     defaultJoinTimeout,
	}
	cfg.name, _ = env.Get("CLUSTER_NAME")
	if v, ok := env.Get("IP_DETECT"); ok && v != "" {
		if !filepath.IsAbs(v) {
			return clusterConfig{}, fmt.Errorf("%s: IP_DETECT %q is not an absolute path", a.Paths.EnvFile, v)
		}
		cfg.ipDetect = v
	} else {
		a.Log.Warn("cluster.env has no IP_DETECT; using the default", "ip_detect", cfg.ipDetect)
	}
	for _, s := range []struct {
		key string
		dst *time.Duration
	}{
		{"IP_DETECT_TIMEOUT", &cfg.ipDetectTimeout},
		{"JOIN_TIMEOUT", &cfg.joinTimeout},
	} {
		v, ok := env.Get(s.key)
		if !ok || v == "" {
			a.Log.Warn("cluster.env has no "+s.key+"; using the default", "default", *s.dst)
			continue
		}
		d, err := parseSeconds(v)
		if err != nil {
			return clusterConfig{}, fmt.Errorf("%s: %s: %w", a.Paths.EnvFile, s.key, err)
		}
		*s.dst = d
	}
	return cfg, nil
}

// parseSeconds parses a positive number of seconds ("30", or "0.5" which
// the tests use).
func parseSeconds(v string) (time.Duration, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f <= 0 || f > 1e9 {
		return 0, fmt.Errorf("%q is not a positive number of seconds", v)
	}
	return time.Duration(f * float64(time.Second)), nil
}
