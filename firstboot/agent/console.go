package agent

import (
	"fmt"
	"io"
)

// The console lines below are grepped by the boot tests; change them only
// together with firstboot/README.md and the tests that match them.

const consolePrefix = "cluster-firstboot: "

func printDetected(w io.Writer, ip, script string) {
	fmt.Fprintf(w, consolePrefix+"detected IP %s (ip-detect %s)\n", ip, script)
}

func printRole(w io.Writer, role, from string) {
	fmt.Fprintf(w, consolePrefix+"role %s (from %s)\n", role, from)
}

func printJoined(w io.Writer, cluster, role, ip string) {
	fmt.Fprintf(w, consolePrefix+"joined cluster %s as %s with IP %s\n", cluster, role, ip)
}

func printAlreadyJoined(w io.Writer, cluster, role, ip string) {
	fmt.Fprintf(w, consolePrefix+"already joined cluster %s as %s with IP %s; not joining again\n", cluster, role, ip)
}

// PrintFailed prints the failure line for err.
func PrintFailed(w io.Writer, err error) {
	fmt.Fprintf(w, consolePrefix+"FAILED: %v\n", err)
}
