package boottest

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// Report is the outcome of a Run.
type Report struct {
	Image string        `json:"image"`
	Accel string        `json:"accel"`
	Nodes []*NodeReport `json:"nodes"`
}

// Passed is true when every case of every node passed.
func (r *Report) Passed() bool {
	for _, n := range r.Nodes {
		if !n.Passed() {
			return false
		}
	}
	return len(r.Nodes) > 0
}

// NodeReport is one node's cases, timings and artifacts.
type NodeReport struct {
	Name   string `json:"name"`
	Role   string `json:"role,omitempty"`
	LinkIP string `json:"link_ip,omitempty"`
	// IP is the address firstboot joined with, from its console line.
	IP string `json:"ip,omitempty"`
	// JoinLine is firstboot's joined (or already joined) console line.
	JoinLine string `json:"join_line,omitempty"`
	// JoinedSeconds is QEMU start to the joined line (0 when not joined).
	JoinedSeconds float64 `json:"joined_seconds,omitempty"`
	Phases        []Phase `json:"phases"`
	Cases         []Case  `json:"cases"`
	// ConsoleLog and Journal are artifact files (when kept).
	ConsoleLog string `json:"console_log,omitempty"`
	Journal    string `json:"journal,omitempty"`
	// ConsoleTail is the end of the console, for failure reports.
	ConsoleTail string `json:"console_tail,omitempty"`
}

// Phase is one timed stretch of the boot, between two console markers.
type Phase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// Case is one named assertion.
type Case struct {
	Name    string  `json:"name"`
	Passed  bool    `json:"passed"`
	Seconds float64 `json:"seconds"`
	// Reason says why it failed (first line: the gist).
	Reason string `json:"reason,omitempty"`
	// Output is what a check printed.
	Output string `json:"output,omitempty"`
}

// Passed is true when every case passed.
func (n *NodeReport) Passed() bool {
	for _, c := range n.Cases {
		if !c.Passed {
			return false
		}
	}
	return len(n.Cases) > 0
}

// Failed lists the failed cases.
func (n *NodeReport) Failed() []Case {
	var out []Case
	for _, c := range n.Cases {
		if !c.Passed {
			out = append(out, c)
		}
	}
	return out
}

// Case returns the case called name.
func (n *NodeReport) Case(name string) (Case, bool) {
	for _, c := range n.Cases {
		if c.Name == name {
			return c, true
		}
	}
	return Case{}, false
}

// Verdict is one line for a human: PASS or FAIL, the node, what failed or
// how long the join took, and the phase timings.
func (n *NodeReport) Verdict() string {
	who := n.Name
	var attrs []string
	if n.Role != "" {
		attrs = append(attrs, n.Role)
	}
	if n.IP != "" {
		attrs = append(attrs, n.IP)
	}
	if len(attrs) > 0 {
		who += " (" + strings.Join(attrs, ", ") + ")"
	}
	var phases []string
	for _, p := range n.Phases {
		phases = append(phases, fmt.Sprintf("%s %.1fs", p.Name, p.Seconds))
	}
	timing := ""
	if len(phases) > 0 {
		timing = " [" + strings.Join(phases, ", ") + "]"
	}
	if n.Passed() {
		joined := ""
		if n.JoinedSeconds > 0 {
			joined = fmt.Sprintf(", joined %.1fs after power-on", n.JoinedSeconds)
		}
		return fmt.Sprintf("PASS %s: %d/%d cases%s%s", who, len(n.Cases), len(n.Cases), joined, timing)
	}
	var why []string
	for _, c := range n.Failed() {
		gist, _, _ := strings.Cut(c.Reason, "\n")
		if len(gist) > 160 {
			gist = gist[:160] + "…"
		}
		why = append(why, fmt.Sprintf("%s: %s", c.Name, gist))
	}
	return fmt.Sprintf("FAIL %s: %d of %d cases failed: %s%s", who, len(why), len(n.Cases), strings.Join(why, "; "), timing)
}

// WriteText prints one verdict line per node and, for failures, the
// reasons.
func (r *Report) WriteText(w io.Writer) {
	for _, n := range r.Nodes {
		fmt.Fprintln(w, n.Verdict())
	}
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Time       string          `xml:"time,attr"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
	SystemOut  string          `xml:"system-out,omitempty"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

// WriteJUnit writes the report as JUnit XML: a test suite per node, a
// test case per assertion; a failure carries the reason and the node's
// console tail.
func (r *Report) WriteJUnit(w io.Writer) error {
	s := junitSuites{Name: "imagebuilder test " + r.Image}
	for _, n := range r.Nodes {
		suite := junitSuite{Name: n.Name, Tests: len(n.Cases), SystemOut: n.Verdict()}
		total := 0.0
		for _, p := range n.Phases {
			suite.Properties = append(suite.Properties, junitProperty{Name: "phase." + p.Name + ".seconds", Value: fmt.Sprintf("%.1f", p.Seconds)})
		}
		for _, k := range [][2]string{{"role", n.Role}, {"ip", n.IP}, {"link_ip", n.LinkIP}, {"console_log", n.ConsoleLog}, {"journal", n.Journal}} {
			if k[1] != "" {
				suite.Properties = append(suite.Properties, junitProperty{Name: k[0], Value: k[1]})
			}
		}
		for _, c := range n.Cases {
			total += c.Seconds
			jc := junitCase{Name: c.Name, Classname: "imagebuilder.test." + n.Name, Time: fmt.Sprintf("%.3f", c.Seconds), SystemOut: c.Output}
			if !c.Passed {
				suite.Failures++
				gist, _, _ := strings.Cut(c.Reason, "\n")
				jc.Failure = &junitFailure{Message: gist, Type: "AssertionError",
					Body: c.Reason + "\n\n--- console tail (" + n.Name + ") ---\n" + n.ConsoleTail + "\n"}
			}
			suite.Cases = append(suite.Cases, jc)
		}
		suite.Time = fmt.Sprintf("%.3f", total)
		s.Tests += suite.Tests
		s.Failures += suite.Failures
		s.Suites = append(s.Suites, suite)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(s); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
