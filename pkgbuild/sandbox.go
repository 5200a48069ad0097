package pkgbuild

import (
	"context"
	"io"
)

// Sandbox runs one build command in isolation. Bwrap is the real one; tests of the
// scheduling logic use a fake.
type Sandbox interface {
	// Run executes spec, writing its stdout and stderr to log, and returns an
	// error (an *exec.ExitError for a non-zero exit) when it does not succeed.
	Run(ctx context.Context, spec SandboxSpec, log io.Writer) error
}

// Mount makes a host path visible inside the sandbox.
type Mount struct {
	Source   string // host path
	Target   string // path inside the sandbox
	Writable bool
}

// SandboxSpec describes one sandboxed command. The host root is visible
// read-only; /tmp, /dev and /proc are fresh.
type SandboxSpec struct {
	Argv []string
	// Env is the complete environment, KEY=VALUE.
	Env []string
	// Dir is the working directory inside the sandbox.
	Dir string
	// Hide is an absolute path replaced by an empty tmpfs before the mounts
	// are made (the install prefix: the host's copy, if any, is hidden, and
	// mount targets below it need not exist on the host), then made read-only:
	// below it only writable mounts take writes.
	Hide   string
	Mounts []Mount
	// Dirs are directories (mode 0755) created inside the sandbox, under /tmp or
	// Hide, before the mounts are made.
	Dirs    []string
	Network bool
}
