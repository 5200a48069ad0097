package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// WayReport is one way's figures.
type WayReport struct {
	Name    string      `json:"name"`
	Label   string      `json:"label"`
	Samples []Sample    `json:"samples"`
	Wall    Stat        `json:"wall_seconds"`
	CPU     Stat        `json:"cpu_seconds"`
	RSSMiB  Stat        `json:"peak_rss_mib"`
	OutMiB  Stat        `json:"output_mib"`
	Boot    *BootResult `json:"boot,omitempty"`
	// PackagesRebuilt lists, for the warm way, the packages `pkg build`
	// built (instead of taking from the store) in any round.
	PackagesRebuilt []string `json:"packages_rebuilt,omitempty"`
	PackagesCached  int      `json:"packages_cached_per_round,omitempty"`
	// Stages are imagebuilder's own stage timings, median over rounds.
	Stages map[string]float64 `json:"imagebuilder_stages_median_seconds,omitempty"`
	// Steps are the wall seconds of each command of the way, median over
	// rounds (the warm way has three: pkg build, genconf, build).
	Steps  map[string]float64 `json:"step_wall_median_seconds,omitempty"`
	Errors []string           `json:"errors,omitempty"`
}

// Report is the whole run, as written to bench/results/.
type Report struct {
	Started  string       `json:"started"`
	Finished string       `json:"finished"`
	Machine  machineInfo  `json:"machine"`
	Rounds   int          `json:"rounds"`
	SlowN    int          `json:"slow_rounds"`
	Prepared *prepared    `json:"prepared"`
	Ways     []*WayReport `json:"ways"`
	Ratios   []Ratio      `json:"ratios"`
	Targets  []Target     `json:"targets"`
	Notes    []string     `json:"notes"`
}

// Target is one of issue 9's goals, reported, never asserted.
type Target struct {
	Goal  string `json:"goal"`
	Value string `json:"value"`
	Met   bool   `json:"met"`
}

type machineInfo struct {
	CPUs       int    `json:"cpus"`
	Kernel     string `json:"kernel"`
	LoadBefore string `json:"loadavg_before"`
	LoadAfter  string `json:"loadavg_after"`
}

func (r *Report) way(name string) *WayReport {
	for _, w := range r.Ways {
		if w.Name == name {
			return w
		}
	}
	return nil
}

func walls(w *WayReport) []float64 {
	var xs []float64
	for _, s := range w.Samples {
		xs = append(xs, s.WallSeconds)
	}
	return xs
}

// finish computes the statistics, ratios and targets from the samples.
func (r *Report) finish() {
	for _, w := range r.Ways {
		var wall, cpu, rss, out []float64
		for _, s := range w.Samples {
			wall = append(wall, s.WallSeconds)
			cpu = append(cpu, s.CPUSeconds)
			rss = append(rss, float64(s.PeakRSSKiB)/1024)
			out = append(out, float64(s.OutputBytes)/(1<<20))
		}
		if len(w.Samples) > 0 { // JSON has no NaN: no samples, zero Stats
			w.Wall, w.CPU, w.RSSMiB, w.OutMiB = summarize(wall), summarize(cpu), summarize(rss), summarize(out)
		}
	}
	cold := r.way(wayCold)
	add := func(of, over, target string, meets func(float64) bool) {
		a, b := r.way(of), r.way(over)
		if a == nil || b == nil || len(a.Samples) == 0 || len(b.Samples) == 0 {
			return
		}
		med, lo, hi := ratio(walls(a), walls(b))
		if math.IsNaN(lo) { // no round had both ways
			lo, hi = med, med
		}
		q := Ratio{Of: of, Over: over, Metric: "wall_seconds", Median: med, Min: lo, Max: hi, Target: target}
		if meets != nil {
			m := meets(med)
			q.Meets = &m
		}
		r.Ratios = append(r.Ratios, q)
	}
	// The shell way extracts and formats the base every time, as the cold
	// build does; libguestfs and Packer start from a base qcow2 made once,
	// as the cached build starts from its base layer.
	add(wayCold, wayShell, "<= 1.2", func(x float64) bool { return x <= 1.2 })
	add(wayCached, wayShell, "", nil)
	add(wayLibguestfs, wayCached, ">= 5", func(x float64) bool { return x >= 5 })
	add(wayPacker, wayCached, ">= 20", func(x float64) bool { return x >= 20 })
	add(wayLibguestfs, wayCold, "", nil)
	add(wayPacker, wayCold, "", nil)
	add(wayWarm, wayCold, "", nil)
	for _, q := range r.Ratios {
		if q.Meets != nil {
			r.Targets = append(r.Targets, Target{
				Goal:  fmt.Sprintf("%s / %s wall time %s", q.Of, q.Over, q.Target),
				Value: fmt.Sprintf("%.2f× (per round %.2f–%.2f)", q.Median, q.Min, q.Max),
				Met:   *q.Meets,
			})
		}
	}
	if w := r.way(wayWarm); w != nil && len(w.Samples) > 0 {
		r.Targets = append(r.Targets,
			Target{Goal: "config-only rebuild (pkg build + genconf + build) < 5 s", Value: fmt.Sprintf("%.1f s median", w.Wall.Median), Met: w.Wall.Median < 5},
			Target{Goal: "config-only rebuild: no package rebuilt", Value: fmt.Sprintf("%d rebuilt, %d cached per round", len(w.PackagesRebuilt), w.PackagesCached), Met: len(w.PackagesRebuilt) == 0})
	}
	for _, w := range []*WayReport{cold, r.way(wayCached), r.way(wayWarm)} {
		if w != nil && len(w.Samples) > 0 {
			r.Targets = append(r.Targets, Target{Goal: w.Name + " peak RSS < 256 MiB (largest single process, children included)",
				Value: fmt.Sprintf("%.0f MiB max", w.RSSMiB.Max), Met: w.RSSMiB.Max < 256})
		}
	}
}

// printTable writes the human table.
func (r *Report) printTable(w io.Writer) {
	fmt.Fprintf(w, "imagebuilder benchmark — %s, %d CPUs, load %s → %s; %d rounds (%d for libguestfs and packer)\n",
		r.Started, r.Machine.CPUs, r.Machine.LoadBefore, r.Machine.LoadAfter, r.Rounds, r.SlowN)
	fmt.Fprintln(w, "median (min–max) per way; CPU = user+sys of all processes; RSS = largest single process")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "way\tn\twall s\tCPU s\tpeak RSS MiB\tqcow2 MiB\tbooted+joined")
	for _, x := range r.Ways {
		boot := "not booted"
		if x.Boot != nil {
			if x.Boot.Joined {
				boot = fmt.Sprintf("yes (%.0f s)", x.Boot.Seconds)
			} else {
				boot = "NO: " + x.Boot.Error
			}
		}
		if len(x.Errors) > 0 {
			boot += fmt.Sprintf(" [%d failed runs]", len(x.Errors))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", x.Name, x.Wall.N, fmtStat(x.Wall, 1), fmtStat(x.CPU, 1), fmtStat(x.RSSMiB, 0), fmtStat(x.OutMiB, 0), boot)
	}
	tw.Flush()
	fmt.Fprintln(w, "ratios (wall time, median of each; per-round range):")
	for _, q := range r.Ratios {
		fmt.Fprintf(w, "  %-18s / %-18s %6.2f×  (%.2f–%.2f)\n", q.Of, q.Over, q.Median, q.Min, q.Max)
	}
	fmt.Fprintln(w, "targets (reported, not asserted):")
	for _, t := range r.Targets {
		mark := "MISSED"
		if t.Met {
			mark = "met"
		}
		fmt.Fprintf(w, "  %-6s %s: %s\n", mark, t.Goal, t.Value)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func fmtStat(s Stat, prec int) string {
	if s.N == 0 || math.IsNaN(s.Median) {
		return "-"
	}
	f := func(x float64) string { return strings.TrimSpace(fmt.Sprintf("%.*f", prec, x)) }
	if s.N == 1 {
		return f(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", f(s.Median), f(s.Min), f(s.Max))
}
