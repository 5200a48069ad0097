package qemu

import (
	"strings"
	"testing"
)

func TestQemuArgs(t *testing.T) {
	base := Config{Disk: "/img/disk.raw"}.withDefaults()
	for _, tc := range []struct {
		name  string
		cfg   func(c *Config)
		accel string
		qmp   string
		want  []string // consecutive pairs/flags that must appear
		not   []string
	}{
		{
			name:  "defaults",
			accel: "tcg",
			want: []string{
				"-nodefaults", "-accel tcg", "-m 1024", "-smp 2", "-display none",
				"-chardev file,id=console,path=/w/console.log", "-serial chardev:console",
				"-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
				"-drive if=pflash,format=raw,unit=1,file=/w/vars.fd",
				"-drive if=virtio,format=raw,file=/img/disk.raw",
			},
			not: []string{"-nic", "-nographic", "-no-reboot", "-cpu"},
		},
		{
			name:  "QMP socket for the TCG nudge",
			accel: "tcg",
			qmp:   "/w/qmp.sock",
			want:  []string{"-qmp unix:/w/qmp.sock,server=on,wait=off"},
		},
		{
			name:  "kvm and a CPU model",
			cfg:   func(c *Config) { c.CPU = "max" },
			accel: "kvm",
			want:  []string{"-accel kvm", "-cpu max"},
		},
		{
			name: "user networking is always restricted",
			cfg: func(c *Config) {
				c.NICs = []NIC{{HostFwd: []HostFwd{{HostPort: 2222, GuestPort: 22}, {Proto: "udp", HostAddr: "127.0.0.2", HostPort: 5353, GuestPort: 53}}},
					{GuestFwd: []GuestFwd{{GuestAddr: "10.0.2.100", GuestPort: 5000, Target: "127.0.0.1:5001"}}, MAC: "52:54:00:12:34:56"}}
			},
			accel: "tcg",
			want: []string{
				"-nic user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp:127.0.0.2:5353-:53",
				"-nic user,model=virtio-net-pci,restrict=on,mac=52:54:00:12:34:56,guestfwd=tcp:10.0.2.100:5000-tcp:127.0.0.1:5001",
			},
		},
		{
			name:  "socket NIC between VMs",
			cfg:   func(c *Config) { c.NICs = []NIC{{SocketListen: "127.0.0.1:40000"}} },
			accel: "tcg",
			want:  []string{"-netdev socket,id=net0,listen=127.0.0.1:40000", "-device virtio-net-pci,netdev=net0"},
			not:   []string{"-nic"},
		},
		{
			name: "credentials and escaping",
			cfg: func(c *Config) {
				c.SMBIOSCredentials = map[string]string{"cluster.role": "master", "b": "x,y=z", "s": "#!/bin/sh\necho hi\n"}
				c.Disk = "/a,b/disk.raw"
				c.NoReboot = true
			},
			accel: "tcg",
			want: []string{
				"-smbios type=11,value=io.systemd.credential:b=x,,y=z",
				"-smbios type=11,value=io.systemd.credential:cluster.role=master",
				"-smbios type=11,value=io.systemd.credential.binary:s=IyEvYmluL3NoCmVjaG8gaGkK",
				"-no-reboot",
				"-drive if=virtio,format=raw,file=/a,,b/disk.raw",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			if tc.cfg != nil {
				tc.cfg(&c)
			}
			c = c.withDefaults()
			if err := c.validate(); err != nil {
				t.Fatal(err)
			}
			args := c.qemuArgs(tc.accel, c.Disk, c.Format, "/w/vars.fd", "/w/console.log", tc.qmp)
			joined := " " + strings.Join(args, " ") + " "
			for _, w := range tc.want {
				if !strings.Contains(joined, " "+w+" ") {
					t.Errorf("args lack %q:\n%s", w, joined)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(joined, " "+n+" ") {
					t.Errorf("args have %q:\n%s", n, joined)
				}
			}
			for i, a := range args {
				if a == "-nic" && !strings.Contains(args[i+1], "restrict=on") {
					t.Errorf("unrestricted user NIC: %s", args[i+1])
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		errs []string
	}{
		{name: "ok", cfg: Config{Disk: "d.raw"}},
		{name: "no disk", cfg: Config{}, errs: []string{"disk: required"}},
		{name: "bad accel and format", cfg: Config{Disk: "d", Accel: "hvf", Format: "vmdk"}, errs: []string{`accel "hvf"`, `format "vmdk"`}},
		{name: "hostfwd off loopback", cfg: Config{Disk: "d", NICs: []NIC{{HostFwd: []HostFwd{{HostAddr: "0.0.0.0", HostPort: 22, GuestPort: 22}}}}}, errs: []string{"must be loopback"}},
		{name: "guestfwd to the network", cfg: Config{Disk: "d", NICs: []NIC{{GuestFwd: []GuestFwd{{GuestAddr: "10.0.2.100", GuestPort: 80, Target: "192.0.2.1:80"}}}}}, errs: []string{"must be a loopback host:port"}},
		{name: "socket off loopback", cfg: Config{Disk: "d", NICs: []NIC{{SocketConnect: "192.0.2.1:4000"}}}, errs: []string{"must be a loopback host:port"}},
		{name: "socket with forwards", cfg: Config{Disk: "d", NICs: []NIC{{SocketListen: "127.0.0.1:4000", HostFwd: []HostFwd{{HostPort: 1, GuestPort: 1}}}}}, errs: []string{"belong to user-mode NICs"}},
		{name: "option injection", cfg: Config{Disk: "d", NICs: []NIC{{Model: "e1000,restrict=off"}}}, errs: []string{"must not contain"}},
		{name: "credential name", cfg: Config{Disk: "d", SMBIOSCredentials: map[string]string{"a b": "x", "ok": "n\x00ul"}}, errs: []string{`credential name "a b"`, "without NUL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.withDefaults().validate()
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.errs)
			}
			for _, e := range tc.errs {
				if !strings.Contains(err.Error(), e) {
					t.Errorf("error %q lacks %q", err, e)
				}
			}
		})
	}
}
