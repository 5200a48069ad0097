package agent

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Systemctl talks to systemd by running systemctl; Debian minbase has no
// D-Bus daemon, and systemctl reaches PID 1 over its private socket.
type Systemctl struct {
	// Path of the systemctl binary; empty means "systemctl" on $PATH.
	Path string
}

var _ Systemd = Systemctl{}

// StartNoBlock runs "systemctl start --no-block UNIT".
func (s Systemctl) StartNoBlock(ctx context.Context, unit string) error {
	path := s.Path
	if path == "" {
		path = "systemctl"
	}
	out, err := exec.CommandContext(ctx, path, "start", "--no-block", unit).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl start --no-block %s: %w: %s", unit, err, strings.TrimSpace(string(out)))
	}
	return nil
}
