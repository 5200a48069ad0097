package images

import (
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/hcl/v2"
)

// Load reads and parses the file at path and validates the sources its
// build uses that only selects (all when only is empty; see Selected).
// Problems are returned as an error whose text has one
// "file:line:col: summary: detail" line per diagnostic.
func Load(path string, vars map[string]string, only []string) (*File, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading image definitions: %w", err)
	}
	f, diags := Parse(path, src, vars)
	if !diags.HasErrors() {
		diags = append(diags, f.Validate(only)...)
	}
	if diags.HasErrors() {
		return nil, DiagError{Diags: diags}
	}
	return f, nil
}

// DiagError carries hcl diagnostics as an error.
type DiagError struct{ Diags hcl.Diagnostics }

func (e DiagError) Error() string {
	var s string
	for i, d := range e.Diags {
		if i > 0 {
			s += "\n"
		}
		s += FormatDiag(d)
	}
	return s
}

// FormatDiag renders one diagnostic as "file:line:col: summary: detail".
func FormatDiag(d *hcl.Diagnostic) string {
	msg := d.Summary
	if d.Detail != "" {
		msg += ": " + d.Detail
	}
	if d.Subject == nil {
		return msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, msg)
}

// WriteDiags prints diagnostics, one per line.
func WriteDiags(w io.Writer, diags hcl.Diagnostics) {
	for _, d := range diags {
		fmt.Fprintln(w, FormatDiag(d))
	}
}
