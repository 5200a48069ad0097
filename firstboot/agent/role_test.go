package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveRole(t *testing.T) {
	tests := []struct {
		name     string
		roleFile string // "" means absent
		cmdline  string // "" means no /proc/cmdline
		credDir  string // content of $CREDENTIALS_DIRECTORY/cluster.role; "" absent
		setDir   bool   // set $CREDENTIALS_DIRECTORY (to an empty dir if credDir == "")
		sysCred  string // /run/credentials/@system/cluster.role; "" absent
		want     string
		wantFrom string // "$CRED" stands for the credentials directory
		wantErr  []string
	}{
		{name: "role file", roleFile: "master\n", want: "master", wantFrom: "/etc/cluster/role"},
		{name: "role file with blanks", roleFile: "  agent_public \n\n", want: "agent_public", wantFrom: "/etc/cluster/role"},
		{name: "role file wins over everything", roleFile: "agent\n", cmdline: "quiet cluster.role=master\n",
			credDir: "master", setDir: true, sysCred: "master", want: "agent", wantFrom: "/etc/cluster/role"},
		{name: "cmdline", cmdline: "BOOT_IMAGE=/vmlinuz root=/dev/vda2 cluster.role=agent quiet\n",
			want: "agent", wantFrom: "kernel command line cluster.role="},
		{name: "cmdline last wins", cmdline: "cluster.role=master cluster.role=agent_public\n",
			want: "agent_public", wantFrom: "kernel command line cluster.role="},
		{name: "cmdline wins over credentials", cmdline: "cluster.role=master", credDir: "agent", setDir: true,
			sysCred: "agent", want: "master", wantFrom: "kernel command line cluster.role="},
		{name: "cmdline without role falls through", cmdline: "quiet splash cluster.name=x\n", sysCred: "agent\n",
			want: "agent", wantFrom: "credential /run/credentials/@system/cluster.role"},
		{name: "credentials directory", credDir: "agent_public\n", setDir: true, sysCred: "master",
			want: "agent_public", wantFrom: "credential $CRED/cluster.role"},
		{name: "credentials directory set but empty", setDir: true, sysCred: "master",
			want: "master", wantFrom: "credential /run/credentials/@system/cluster.role"},
		{name: "system credential", sysCred: "master", want: "master",
			wantFrom: "credential /run/credentials/@system/cluster.role"},
		{name: "nothing", cmdline: "quiet\n", wantErr: []string{
			"no role for this host", "/etc/cluster/role is missing", "no cluster.role=",
			"$CREDENTIALS_DIRECTORY is unset", "/run/credentials/@system/cluster.role is missing"}},
		{name: "bad role file does not fall through", roleFile: "worker\n", cmdline: "cluster.role=master",
			wantErr: []string{`invalid role "worker" (from /etc/cluster/role)`, "master, agent or agent_public"}},
		{name: "empty role file", roleFile: "\n", cmdline: "cluster.role=master",
			wantErr: []string{`invalid role "" (from /etc/cluster/role)`}},
		{name: "two words in role file", roleFile: "master agent\n",
			wantErr: []string{`invalid role "master agent"`}},
		{name: "bad cmdline role", cmdline: "cluster.role=Master",
			wantErr: []string{`invalid role "Master" (from kernel command line cluster.role=)`}},
		{name: "bad credential", sysCred: "boss",
			wantErr: []string{`invalid role "boss" (from credential /run/credentials/@system/cluster.role)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHost(t)
			env := map[string]string{}
			cred := t.TempDir()
			if tc.setDir {
				env["CREDENTIALS_DIRECTORY"] = cred
			}
			h.setGetenv(env)
			if tc.roleFile != "" {
				h.write(RoleFile, tc.roleFile)
			}
			if tc.cmdline != "" {
				h.write(CmdlineFile, tc.cmdline)
			}
			if tc.credDir != "" {
				writeFile(t, filepath.Join(cred, "cluster.role"), tc.credDir, 0o600)
			}
			if tc.sysCred != "" {
				h.write(filepath.Join(SystemCredentialsDir, "cluster.role"), tc.sysCred)
			}
			role, from, err := h.agent.ResolveRole()
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("ResolveRole = %q from %q, want error", role, from)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ResolveRole: %v", err)
			}
			wantFrom := strings.ReplaceAll(tc.wantFrom, "$CRED", cred)
			if role != tc.want || from != wantFrom {
				t.Errorf("ResolveRole = %q from %q, want %q from %q", role, from, tc.want, wantFrom)
			}
		})
	}
}

func TestResolveRoleUnreadable(t *testing.T) {
	// A directory where the role file should be fails to read for every
	// user, root included, and must not be taken for "absent".
	h := newTestHost(t)
	if err := os.MkdirAll(h.agent.Paths.Host(RoleFile), 0o755); err != nil {
		t.Fatal(err)
	}
	h.write(CmdlineFile, "cluster.role=master")
	if _, _, err := h.agent.ResolveRole(); err == nil || !strings.Contains(err.Error(), "reading") {
		t.Fatalf("ResolveRole with a directory at /etc/cluster/role = %v, want read error", err)
	}
}

func TestCmdlineRole(t *testing.T) {
	tests := []struct {
		cmdline, want string
		found         bool
	}{
		{"", "", false},
		{"quiet", "", false},
		{"cluster.role=master", "master", true},
		{"a=b cluster.role=agent c", "agent", true},
		{"cluster.role=master\tcluster.role=agent\n", "agent", true},
		{`cluster.role="agent_public"`, "agent_public", true},
		{"cluster.role=", "", true},
		{"xcluster.role=master", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.cmdline, func(t *testing.T) {
			got, found := CmdlineRole(tc.cmdline)
			if got != tc.want || found != tc.found {
				t.Errorf("CmdlineRole(%q) = %q, %v; want %q, %v", tc.cmdline, got, found, tc.want, tc.found)
			}
		})
	}
}

func FuzzCmdlineRole(f *testing.F) {
	f.Add("BOOT_IMAGE=/vmlinuz cluster.role=master quiet")
	f.Add("cluster.role=")
	f.Fuzz(func(t *testing.T, cmdline string) {
		role, found := CmdlineRole(cmdline)
		if !found && role != "" {
			t.Fatalf("role %q without cluster.role=", role)
		}
		if strings.ContainsAny(role, " \t\n") {
			t.Fatalf("role %q holds blanks", role)
		}
	})
}
