package qemu

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Firmware is a UEFI firmware: read-only code and a variable store
// template, copied for every VM.
type Firmware struct {
	Code string
	Vars string
	// BIOS boots with QEMU's own SeaBIOS instead (legacy BIOS): no
	// pflash, Code and Vars are unused.
	BIOS bool
}

// SeaBIOS is legacy BIOS boot with QEMU's default firmware.
var SeaBIOS = Firmware{BIOS: true}

// DefaultFirmware is Debian's OVMF (package ovmf), 4 MiB build.
var DefaultFirmware = Firmware{
	Code: "/usr/share/OVMF/OVMF_CODE_4M.fd",
	Vars: "/usr/share/OVMF/OVMF_VARS_4M.fd",
}

// HostFwd forwards a host port on loopback to a guest port.
type HostFwd struct {
	Proto     string // "tcp" (default) or "udp"
	HostAddr  string // default 127.0.0.1; must be a loopback address
	HostPort  int
	GuestPort int
}

// GuestFwd makes a guest address:port reach a loopback service of the host
// (a registry, a master of another VM).
type GuestFwd struct {
	GuestAddr string // inside the user network, e.g. 10.0.2.100
	GuestPort int
	Target    string // host "127.0.0.1:port"
}

// NIC is one network interface. Without Socket fields it is user-mode
// networking with restrict=on, always: the guest can talk to nothing but
// QEMU's own DHCP/DNS stub and the forwards. With SocketListen or
// SocketConnect (loopback host:port) it is a socket netdev joining two VMs on
// one segment instead.
type NIC struct {
	HostFwd  []HostFwd
	GuestFwd []GuestFwd
	// Net is the user network ("10.0.2.0/24" if empty).
	Net   string
	MAC   string
	Model string // default virtio-net-pci

	SocketListen  string
	SocketConnect string
}

// SerialPort is a virtio-serial port the guest sees as
// /dev/virtio-ports/NAME; the host end is a Unix socket QEMU listens on at
// Socket (at most 100 bytes long), which a client connects to at any time.
type SerialPort struct {
	Name   string
	Socket string
}

// Config describes one VM.
type Config struct {
	// Disk is the image to boot; Format is "raw" or "qcow2" ("" guesses
	// from the extension).
	Disk   string
	Format string
	// Firmware defaults to DefaultFirmware.
	Firmware Firmware
	// Memory in MiB (default 1024) and CPUs (default 2).
	Memory int
	CPUs   int
	// CPU is the -cpu model; default QEMU's own (qemu64), which boots
	// Debian fastest under TCG. Distributions built for x86-64-v2 (RHEL 9
	// and its rebuilds) need "max" (measured about 1.5x slower to boot
	// under TCG) or a named model with SSE4.2 and POPCNT.
	CPU string
	// Snapshot boots through a qcow2 overlay in WorkDir, created with
	// qemu-img, so Disk is never written.
	Snapshot bool
	// SMBIOSCredentials become systemd credentials in the guest
	// (-smbios type=11,value=io.systemd.credential:NAME=VALUE; a value of
	// several lines, such as a script, goes base64-encoded as
	// io.systemd.credential.binary:NAME=BASE64).
	SMBIOSCredentials map[string]string
	NICs              []NIC
	// SerialPorts are virtio-serial ports, each served on a Unix socket
	// of the host that QEMU listens on (the test channel of boottest).
	SerialPorts []SerialPort
	// ConsoleLog receives the serial console; default WorkDir/console.log.
	ConsoleLog string
	// Accel is "tcg" (default), "kvm" or "auto" (ProbeKVM, else tcg).
	Accel string
	// WorkDir holds the firmware variables, the overlay and, by default,
	// the console log. When empty a temporary directory is made and Kill
	// removes it.
	WorkDir string
	// NoReboot makes a guest reboot end QEMU instead.
	NoReboot bool
	// TCGNudge is how often a TCG guest gets a Shift key tap once its
	// kernel runs, against lost vCPU wake-ups that stall a boot until the
	// next interrupt (see nudge.go); 0 is DefaultTCGNudge, negative
	// disables it. KVM guests are never nudged.
	TCGNudge time.Duration
	// QEMU and QemuImg are the programs (default qemu-system-x86_64 from
	// qemu-system-x86, qemu-img from qemu-utils).
	QEMU    string
	QemuImg string
	// ExtraArgs are appended to QEMU's command line.
	ExtraArgs []string
	// Log receives what the runner does; nil discards.
	Log *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Firmware == (Firmware{}) {
		c.Firmware = DefaultFirmware
	}
	if c.Memory == 0 {
		c.Memory = 1024
	}
	if c.CPUs == 0 {
		c.CPUs = 2
	}
	if c.Accel == "" {
		c.Accel = "tcg"
	}
	if c.Format == "" {
		c.Format = "raw"
		if strings.HasSuffix(c.Disk, ".qcow2") {
			c.Format = "qcow2"
		}
	}
	if c.QEMU == "" {
		c.QEMU = "qemu-system-x86_64"
	}
	if c.QemuImg == "" {
		c.QemuImg = "qemu-img"
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.TCGNudge == 0 {
		c.TCGNudge = DefaultTCGNudge
	}
	return c
}

var credNameRe = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// validate reports every configuration error at once.
func (c Config) validate() error {
	var errs []error
	if c.Disk == "" {
		errs = append(errs, errors.New("disk: required"))
	}
	if c.Format != "raw" && c.Format != "qcow2" {
		errs = append(errs, fmt.Errorf("format %q: want raw or qcow2", c.Format))
	}
	switch c.Accel {
	case "tcg", "kvm", "auto":
	default:
		errs = append(errs, fmt.Errorf("accel %q: want tcg, kvm or auto", c.Accel))
	}
	if c.Memory < 64 || c.CPUs < 1 {
		errs = append(errs, fmt.Errorf("memory %d MiB / cpus %d out of range", c.Memory, c.CPUs))
	}
	for name, v := range c.SMBIOSCredentials {
		if !credNameRe.MatchString(name) {
			errs = append(errs, fmt.Errorf("SMBIOS credential name %q: want letters, digits, '.', '_', '-'", name))
		}
		if strings.ContainsRune(v, 0) {
			errs = append(errs, fmt.Errorf("SMBIOS credential %s: value must be text without NUL bytes", name))
		}
	}
	for i, p := range c.SerialPorts {
		if !credNameRe.MatchString(p.Name) || p.Socket == "" || len(p.Socket) > 100 || strings.Contains(p.Socket, ",") {
			errs = append(errs, fmt.Errorf("serial port %d: want a name of letters, digits, '.', '_', '-' and a socket path of at most 100 bytes without ',', got %q at %q", i, p.Name, p.Socket))
		}
	}
	for i, n := range c.NICs {
		if err := n.validate(); err != nil {
			errs = append(errs, fmt.Errorf("NIC %d: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

func isLoopbackHostPort(hp string) bool {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	p, err := strconv.Atoi(port)
	return ip != nil && ip.IsLoopback() && err == nil && p > 0 && p < 65536
}

func (n NIC) validate() error {
	var errs []error
	sockets := 0
	for _, s := range []string{n.SocketListen, n.SocketConnect} {
		if s == "" {
			continue
		}
		sockets++
		if !isLoopbackHostPort(s) {
			errs = append(errs, fmt.Errorf("socket address %q must be a loopback host:port", s))
		}
	}
	if sockets > 1 {
		errs = append(errs, errors.New("SocketListen and SocketConnect are exclusive"))
	}
	if sockets > 0 && (len(n.HostFwd) > 0 || len(n.GuestFwd) > 0 || n.Net != "") {
		errs = append(errs, errors.New("forwards and Net belong to user-mode NICs, not socket NICs"))
	}
	for _, f := range n.HostFwd {
		if f.Proto != "" && f.Proto != "tcp" && f.Proto != "udp" {
			errs = append(errs, fmt.Errorf("hostfwd proto %q", f.Proto))
		}
		if f.HostAddr != "" {
			if ip := net.ParseIP(f.HostAddr); ip == nil || !ip.IsLoopback() {
				errs = append(errs, fmt.Errorf("hostfwd address %q must be loopback", f.HostAddr))
			}
		}
		if f.HostPort < 0 || f.HostPort > 65535 || f.GuestPort <= 0 || f.GuestPort > 65535 {
			errs = append(errs, fmt.Errorf("hostfwd ports %d->%d out of range", f.HostPort, f.GuestPort))
		}
	}
	for _, f := range n.GuestFwd {
		if net.ParseIP(f.GuestAddr) == nil || f.GuestPort <= 0 || f.GuestPort > 65535 {
			errs = append(errs, fmt.Errorf("guestfwd %s:%d invalid", f.GuestAddr, f.GuestPort))
		}
		if !isLoopbackHostPort(f.Target) {
			errs = append(errs, fmt.Errorf("guestfwd target %q must be a loopback host:port", f.Target))
		}
	}
	if strings.ContainsAny(n.Net+n.MAC+n.Model, ",=") {
		errs = append(errs, errors.New("nic: net, mac and model must not contain ',' or '='"))
	}
	return errors.Join(errs...)
}

// optEscape escapes a value for QEMU's option syntax (a comma is doubled).
func optEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// nicArgs is the -nic or -netdev/-device of one NIC.
func (n NIC) args(i int) []string {
	model := n.Model
	if model == "" {
		model = "virtio-net-pci"
	}
	mac := ""
	if n.MAC != "" {
		mac = ",mac=" + n.MAC
	}
	if n.SocketListen != "" || n.SocketConnect != "" {
		id := fmt.Sprintf("net%d", i)
		sock := "listen=" + n.SocketListen
		if n.SocketConnect != "" {
			sock = "connect=" + n.SocketConnect
		}
		return []string{"-netdev", "socket,id=" + id + "," + sock, "-device", model + ",netdev=" + id + mac}
	}
	opt := "user,model=" + model + ",restrict=on" + mac
	if n.Net != "" {
		opt += ",net=" + n.Net
	}
	for _, f := range n.HostFwd {
		proto, addr := f.Proto, f.HostAddr
		if proto == "" {
			proto = "tcp"
		}
		if addr == "" {
			addr = "127.0.0.1"
		}
		opt += fmt.Sprintf(",hostfwd=%s:%s:%d-:%d", proto, addr, f.HostPort, f.GuestPort)
	}
	for _, f := range n.GuestFwd {
		opt += fmt.Sprintf(",guestfwd=tcp:%s:%d-tcp:%s", f.GuestAddr, f.GuestPort, f.Target)
	}
	return []string{"-nic", opt}
}

// qemuArgs is QEMU's command line for a VM whose drive is disk (the image
// or its overlay), firmware variables vars and console log console.
func (c Config) qemuArgs(accel, disk, format, vars, console, qmp string) []string {
	args := []string{
		"-name", "imagebuilder",
		"-nodefaults", "-no-user-config",
		"-machine", "q35",
		"-accel", accel,
		"-m", strconv.Itoa(c.Memory),
		"-smp", strconv.Itoa(c.CPUs),
		"-display", "none",
		"-monitor", "none",
		"-chardev", "file,id=console,path=" + optEscape(console),
		"-serial", "chardev:console",
		"-drive", "if=virtio,format=" + format + ",file=" + optEscape(disk),
		"-device", "virtio-rng-pci",
	}
	if !c.Firmware.BIOS {
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+optEscape(c.Firmware.Code),
			"-drive", "if=pflash,format=raw,unit=1,file="+optEscape(vars))
	}
	if c.CPU != "" {
		args = append(args, "-cpu", c.CPU)
	}
	if c.NoReboot {
		args = append(args, "-no-reboot")
	}
	if qmp != "" {
		args = append(args, "-qmp", "unix:"+optEscape(qmp)+",server=on,wait=off")
	}
	names := make([]string, 0, len(c.SMBIOSCredentials))
	for n := range c.SMBIOSCredentials {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := "io.systemd.credential:" + n + "=" + c.SMBIOSCredentials[n]
		if strings.Contains(c.SMBIOSCredentials[n], "\n") {
			v = "io.systemd.credential.binary:" + n + "=" + base64.StdEncoding.EncodeToString([]byte(c.SMBIOSCredentials[n]))
		}
		args = append(args, "-smbios", "type=11,value="+optEscape(v))
	}
	for i, n := range c.NICs {
		args = append(args, n.args(i)...)
	}
	if len(c.SerialPorts) > 0 {
		args = append(args, "-device", "virtio-serial-pci,id=vser")
		for i, p := range c.SerialPorts {
			id := fmt.Sprintf("vport%d", i)
			args = append(args,
				"-chardev", "socket,id="+id+",path="+p.Socket+",server=on,wait=off",
				"-device", "virtserialport,bus=vser.0,chardev="+id+",name="+p.Name)
		}
	}
	return append(args, c.ExtraArgs...)
}

// absPath makes p absolute (qemu-img backing files are resolved relative
// to the overlay otherwise).
func absPath(p string) (string, error) {
	a, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", p, err)
	}
	return a, nil
}
