package main

import (
	"math"
	"slices"
)

// Stat is the median of several samples with their min and max.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

// summarize returns the median (the mean of the two middle values for an
// even count), min and max of xs; NaNs for no samples.
func summarize(xs []float64) Stat {
	if len(xs) == 0 {
		return Stat{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Stat{Median: med, Min: s[0], Max: s[n-1], N: n}
}

// Ratio compares two ways: Median is the ratio of their medians; Min and
// Max are the extremes of the per-round ratios (both ways measured in the
// same round, so the machine's load at that moment cancels out).
type Ratio struct {
	Of      string  `json:"of"`
	Over    string  `json:"over"`
	Metric  string  `json:"metric"`
	Median  float64 `json:"median"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	Target  string  `json:"target,omitempty"`
	Meets   *bool   `json:"meets,omitempty"`
	Comment string  `json:"comment,omitempty"`
}

// ratio of a over b, round by round (rounds where either is missing are
// skipped).
func ratio(a, b []float64) (median, lo, hi float64) {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			rs = append(rs, a[i]/b[i])
		}
	}
	ma, mb := summarize(a).Median, summarize(b).Median
	median = math.NaN()
	if mb > 0 {
		median = ma / mb
	}
	s := summarize(rs)
	return median, s.Min, s.Max
}
