// Package agent owns what runs on a host at every boot: running the cluster's
// ip-detect script and validating its answer, recording the detected IP
// (/run/cluster/ip.env), resolving the host's role, starting the role target,
// polling the role's join check and writing the joined marker
// (/var/lib/cluster/joined).
//
// Every path the agent touches hangs off Paths.Root, and every outside effect
// (running scripts, listing interface addresses, talking to systemd, the
// clock) sits behind a field of Agent, so the logic runs in tests as an
// unprivileged user in a temporary directory.
//
// The console lines it prints on stdout are a contract with the boot tests;
// they are built by the functions in console.go only.
package agent
