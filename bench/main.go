package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

type options struct {
	n, slowN, bootJobs             int
	ways, bin, base, work, results string
	config, packages, store, cache string
	role, profile                  string
	boot, verbose                  bool
	bootTimeout                    time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cache := os.Getenv("IMAGEBUILDER_CACHE")
	if cache == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return err
		}
		cache = filepath.Join(dir, "imagebuilder")
	}
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `bench builds the same host image four ways, N rounds each, boots each result
once, and prints a table (JSON under -results).

  go run ./bench -base build/base-debian12.tar            # what make bench runs
  go run ./bench -base B -n 1 -ways imagebuilder-cold,shell -boot=false
  go run ./bench -base B -profile build/bench/profile      # pprof of one in-process build

Flags:
`)
		fs.PrintDefaults()
	}
	fs.IntVar(&o.n, "n", 3, "rounds per way (each figure is the median of these)")
	fs.IntVar(&o.slowN, "slow-n", 0, "rounds for libguestfs and packer (0: same as -n)")
	fs.StringVar(&o.ways, "ways", strings.Join(allWays, ","), "ways to measure, comma separated")
	fs.StringVar(&o.bin, "bin", "bin/imagebuilder", "the imagebuilder CLI")
	fs.StringVar(&o.base, "base", "", "the Debian 12 base rootfs tarball (required)")
	fs.StringVar(&o.work, "work", "build/bench", "scratch folder for images")
	fs.StringVar(&o.results, "results", "bench/results", "folder for the JSON report")
	fs.StringVar(&o.config, "config", "examples/config.yaml", "the reference cluster config (beside its ip-detect)")
	fs.StringVar(&o.packages, "packages", "packages", "the reference package definitions")
	fs.StringVar(&o.store, "store", filepath.Join(cache, "store"), "package store")
	fs.StringVar(&o.cache, "cache", cache, "cache for the bench's slow inputs (base qcow2s, Packer)")
	fs.StringVar(&o.role, "role", "master", "role passed at boot (SMBIOS credential cluster.role)")
	fs.BoolVar(&o.boot, "boot", true, "boot each way's image once until its host joined")
	fs.DurationVar(&o.bootTimeout, "boot-timeout", 8*time.Minute, "per boot")
	fs.IntVar(&o.bootJobs, "boot-jobs", 2, "VMs booted at once")
	fs.StringVar(&o.profile, "profile", "", "instead of benchmarking: profile one in-process imagebuilder build (CPU + heap pprof) into this folder")
	fs.BoolVar(&o.verbose, "v", false, "log commands and their stderr")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if o.base == "" {
		return errors.New("-base: required (the Debian 12 base tarball; make bench passes the Makefile's $(BASE))")
	}
	if o.slowN == 0 {
		o.slowN = o.n
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ways := strings.Split(o.ways, ",")
	for _, w := range ways {
		if !slices.Contains(allWays, w) {
			return fmt.Errorf("-ways: unknown way %q (ways: %s)", w, strings.Join(allWays, ", "))
		}
	}
	scripts, err := scriptsDir()
	if err != nil {
		return err
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	in := &inputs{
		Bin: abs(o.bin), Base: abs(o.base), Scripts: scripts, Work: abs(o.work),
		Bundle: filepath.Join(abs(o.work), "bundle.tar.zst"), Config: abs(o.config),
		PackagesDir: abs(o.packages), Store: abs(o.store),
	}
	if o.profile != "" {
		return profileBuild(ctx, log, in, o.profile, o.cache, stdout)
	}
	if err := lookTools(ways); err != nil {
		return err
	}
	rep := &Report{Started: time.Now().UTC().Format(time.RFC3339), Rounds: o.n, SlowN: o.slowN, Machine: machine()}
	prep, err := prepare(ctx, log, in, ways, o.cache)
	if err != nil {
		return fmt.Errorf("preparing inputs: %w", err)
	}
	rep.Prepared = prep
	measure(ctx, log, in, ways, o, rep, stderr)
	if o.boot {
		var booted []string
		for _, w := range rep.Ways {
			if len(w.Samples) > 0 {
				booted = append(booted, w.Name)
			}
		}
		boots := bootAll(ctx, log, in, booted, o.role, o.bootTimeout, o.bootJobs)
		for _, w := range rep.Ways {
			w.Boot = boots[w.Name]
		}
	}
	rep.Machine.LoadAfter = loadavg()
	rep.Finished = time.Now().UTC().Format(time.RFC3339)
	rep.Notes = notes(prep, o)
	rep.finish()
	rep.printTable(stdout)
	path, err := writeReport(o.results, rep)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "report: %s\n", path)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// measure runs the rounds: in each round every way once, in table order,
// so slow moments of the machine hit all ways of that round.
func measure(ctx context.Context, log *slog.Logger, in *inputs, ways []string, o options, rep *Report, stderr io.Writer) {
	stages := map[string]map[string][]float64{}
	stepWalls := map[string]map[string][]float64{}
	for _, w := range ways {
		rep.Ways = append(rep.Ways, &WayReport{Name: w, Label: wayLabels[w]})
	}
	logOut := io.Discard
	if o.verbose {
		logOut = stderr
	}
	for round := range o.n {
		for _, wr := range rep.Ways {
			if ctx.Err() != nil {
				return
			}
			if slowWays[wr.Name] && round >= o.slowN {
				continue
			}
			steps, err := in.stepsFor(wr.Name, round)
			if err != nil {
				wr.Errors = append(wr.Errors, err.Error())
				continue
			}
			// Write back what the previous way left dirty, untimed, so it
			// does not slow this one down.
			syscall.Sync()
			log.Info("measure", "round", round+1, "way", wr.Name)
			s, results, err := runSteps(ctx, log, logOut, steps)
			if err == nil {
				// Timed: every way's outputs are durable when it ends, as
				// imagebuilder's are (it fsyncs them itself).
				var sr stepResult
				sr, err = syncOutputs(in.outDir(wr.Name))
				s.WallSeconds += sr.WallSeconds
				results = append(results, sr)
				steps = append(steps, step{Name: "fsync outputs"})
			}
			if err != nil {
				log.Error("run failed", "way", wr.Name, "err", err)
				wr.Errors = append(wr.Errors, err.Error())
				continue
			}
			if fi, err := os.Stat(in.output(wr.Name)); err == nil {
				s.OutputBytes = fi.Size()
			} else {
				wr.Errors = append(wr.Errors, fmt.Sprintf("round %d: no output: %v", round+1, err))
				continue
			}
			log.Info("measured", "way", wr.Name, "wall", fmt.Sprintf("%.1fs", s.WallSeconds), "cpu", fmt.Sprintf("%.1fs", s.CPUSeconds), "rss_mib", s.PeakRSSKiB/1024)
			wr.Samples = append(wr.Samples, s)
			if stepWalls[wr.Name] == nil {
				stepWalls[wr.Name] = map[string][]float64{}
			}
			for i, st := range steps {
				stepWalls[wr.Name][st.Name] = append(stepWalls[wr.Name][st.Name], results[i].WallSeconds)
				switch st.Name {
				case "pkg build":
					built, cached := packageStates(results[i].Stdout)
					wr.PackagesRebuilt = append(wr.PackagesRebuilt, built...)
					wr.PackagesCached = len(cached)
				case "imagebuilder build":
					recordStages(stages, wr.Name, results[i].Stdout)
				}
			}
		}
	}
	for _, wr := range rep.Ways {
		wr.Stages = medians(stages[wr.Name])
		wr.Steps = medians(stepWalls[wr.Name])
	}
}

func medians(m map[string][]float64) map[string]float64 {
	if m == nil {
		return nil
	}
	out := map[string]float64{}
	for k, v := range m {
		out[k] = summarize(v).Median
	}
	return out
}

// recordStages keeps imagebuilder's own stage timings from `build --json`.
func recordStages(into map[string]map[string][]float64, way, stdout string) {
	var res struct {
		Stages []struct {
			Name    string  `json:"name"`
			Seconds float64 `json:"seconds"`
		} `json:"stages"`
	}
	if json.Unmarshal([]byte(stdout), &res) != nil {
		return
	}
	if into[way] == nil {
		into[way] = map[string][]float64{}
	}
	for _, s := range res.Stages {
		into[way][s.Name] = append(into[way][s.Name], s.Seconds)
	}
}

func notes(p *prepared, o options) []string {
	n := []string{
		"the machine is shared: other engineers' builds and QEMU boots run concurrently, so absolute figures are noisy; ratios are per round",
		"QEMU runs TCG here (KVM does not work): libguestfs' appliance and Packer's VM are emulated, which inflates both",
		"imagebuilder writes the qcow2 (its raw disk is scratch) with SHA-256 of the output, the bundle and every partition; the shell baseline writes raw + qcow2 without checksums",
		"before each run the bench syncs (untimed) so one way's dirty pages do not slow the next; after it, the way's outputs are fsynced (timed): every way ends with durable images, as imagebuilder's own are",
		"the libguestfs way starts from a qcow2 of the base (shell.sh without the bundle: fixups and hygiene done), made once and cached; copying it is measured",
		"the Packer way starts from a qcow2 of the base plus openssh-server (host keys kept, a bench key authorized for root), made once and cached; its guest uses restrict=on user networking with one hostfwd to sshd (set through qemuargs)",
		"peak RSS is the largest single process of a run (wait4 maxrss): for libguestfs and packer that is the QEMU process",
	}
	if len(p.PackagesBuilt) == 0 {
		n = append(n, fmt.Sprintf("packages were already in the store before the measurement (%d cached): cold means an empty output folder, not an empty package store", len(p.PackagesCached)))
	} else {
		n = append(n, fmt.Sprintf("preparation built %d package(s) (not measured): %s", len(p.PackagesBuilt), strings.Join(p.PackagesBuilt, ", ")))
	}
	if o.slowN < o.n {
		n = append(n, fmt.Sprintf("libguestfs and packer ran %d round(s) only, for time", o.slowN))
	}
	return n
}

func machine() machineInfo {
	m := machineInfo{CPUs: runtime.NumCPU(), LoadBefore: loadavg()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// writeReport writes the report as bench/results/bench-<time>.json.
func writeReport(dir string, r *Report) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	stamp := strings.NewReplacer(":", "", "-", "").Replace(r.Started)
	p := filepath.Join(dir, "bench-"+stamp+".json")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return "", err
	}
	return p, os.Rename(tmp, p)
}

// scriptsDir finds bench/ (its ways/ and prep/ scripts) from the working
// directory: make bench and go run ./bench run at the repository root.
func scriptsDir() (string, error) {
	d, err := filepath.Abs("bench")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(d, "ways", "shell.sh")); err != nil {
		return "", fmt.Errorf("run from the repository root (bench/ways/shell.sh not found): %w", err)
	}
	return d, nil
}
