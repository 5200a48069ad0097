package cli

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"imagebuilder/imagebuilder/qemu"
	"imagebuilder/overlay"
)

func newBootCmd(g *globals) *cobra.Command {
	var (
		cfg     qemu.Config
		until   string
		timeout time.Duration
		role    string
		quiet   bool
	)
	cmd := &cobra.Command{
		Use:   "boot IMAGE",
		Short: "Boot an image in QEMU for a look, with its serial console on the terminal",
		Long: `boot starts the image under UEFI (OVMF) in QEMU — KVM when a short probe
shows it works, TCG otherwise — with restricted user-mode networking (the
guest reaches nothing outside QEMU) and streams its serial console to the
terminal. With --snapshot the image is untouched: writes go to a throwaway
overlay. With --until the command ends, successfully, as soon as a console
line matches the pattern, and fails if --timeout passes first; the console
is shown read-only (log in through an SSH hostfwd or read the log file).`,
		Example: `  imagebuilder boot build/images/host.qcow2 --snapshot
  imagebuilder boot host.qcow2 --snapshot --role agent --until 'joined cluster' --timeout 5m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Disk = args[0]
			cfg.Log = g.logger()
			cfg.NICs = []qemu.NIC{{}}
			if role != "" {
				if !overlay.ValidRole(role) {
					return fmt.Errorf("--role %q: must be one of %s", role, strings.Join(overlay.Roles, ", "))
				}
				cfg.SMBIOSCredentials = map[string]string{"cluster.role": role}
			}
			var re *regexp.Regexp
			if until != "" {
				var err error
				if re, err = regexp.Compile(until); err != nil {
					return fmt.Errorf("--until: %w", err)
				}
			}
			ctx := cmd.Context()
			vm, err := qemu.Start(ctx, cfg)
			if err != nil {
				return err
			}
			defer vm.Kill()
			if !quiet {
				con := vm.Console(0)
				defer con.Close()
				go io.Copy(g.stdout, con)
			}
			if re != nil {
				line, err := vm.Expect(ctx, re, timeout)
				if err != nil {
					return fmt.Errorf("%w (console log: %s)", err, vm.ConsoleLog())
				}
				time.Sleep(200 * time.Millisecond) // let the console copy catch up
				fmt.Fprintf(g.stderr, "boot: matched %q: %s\n", until, line)
				return nil
			}
			select {
			case <-vm.Done():
				return vm.Wait()
			case <-ctx.Done():
				return nil
			}
		},
	}
	f := cmd.Flags()
	f.BoolVar(&cfg.Snapshot, "snapshot", false, "boot through a copy-on-write overlay; the image stays untouched")
	f.IntVar(&cfg.Memory, "memory", 1024, "guest memory in MiB")
	f.IntVar(&cfg.CPUs, "cpus", 2, "guest CPUs")
	f.StringVar(&cfg.Accel, "accel", "auto", "accelerator: auto (probe KVM, else TCG), kvm or tcg")
	f.StringVar(&cfg.ConsoleLog, "console-log", "", "also keep the serial console in this file")
	f.StringVar(&role, "role", "", "pass the role as the systemd credential cluster.role (SMBIOS)")
	f.StringVar(&until, "until", "", "stop successfully when a console line matches this regular expression")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "with --until: how long to wait")
	f.BoolVar(&quiet, "quiet", false, "do not stream the console to the terminal")
	return cmd
}
