package agent

import (
	"context"
	"errors"
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

// IsActive runs "systemctl is-active --quiet UNIT": exit 0 is active,
// exit 3 is not (yet) active, anything else is an error (no systemd to
// ask, for one).
func (s Systemctl) IsActive(ctx context.Context, unit string) (bool, error) {
	out, err := exec.CommandContext(ctx, s.path(), "is-active", "--quiet", unit).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &exit) && exit.ExitCode() == 3:
		return false, nil
	default:
		return false, fmt.Errorf("systemctl is-active %s: %w: %s", unit, err, strings.TrimSpace(string(out)))
	}
}

func (s Systemctl) path() string {
	if s.Path == "" {
		return "systemctl"
	}
	return s.Path
}

// Start runs "systemctl start UNIT", which returns once the start job is
// done.
func (s Systemctl) Start(ctx context.Context, unit string) error {
	out, err := exec.CommandContext(ctx, s.path(), "start", unit).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl start %s: %w: %s", unit, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// StartNoBlock runs "systemctl start --no-block UNIT".
func (s Systemctl) StartNoBlock(ctx context.Context, unit string) error {
	out, err := exec.CommandContext(ctx, s.path(), "start", "--no-block", unit).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl start --no-block %s: %w: %s", unit, err, strings.TrimSpace(string(out)))
	}
	return nil
}
