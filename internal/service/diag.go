package service

import (
	"fmt"
	"strings"
)

// Source says where a value was written: a file and a 1-based line and
// column. A zero Line means "not from a file" (a built-in default or a
// command-line flag); Origin then says what it was.
type Source struct {
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	Col    int    `json:"col,omitempty"`
	Origin string `json:"origin,omitempty"` // "default", "defaults", "flag", "inetd.conf"; empty for the entry itself
}

// String formats the position as file:line:col, the form every gxinetd
// message uses, dropping the parts that are unknown.
func (s Source) String() string {
	switch {
	case s.File == "" && s.Line == 0:
		if s.Origin != "" {
			return "<" + s.Origin + ">"
		}
		return "<builtin>"
	case s.Line == 0:
		return s.File
	case s.Col == 0:
		return fmt.Sprintf("%s:%d", s.File, s.Line)
	default:
		return fmt.Sprintf("%s:%d:%d", s.File, s.Line, s.Col)
	}
}

// IsZero reports whether nothing is known about the position.
func (s Source) IsZero() bool { return s.File == "" && s.Line == 0 && s.Origin == "" }

// Severity orders diagnostics. Errors make the thing they name unusable
// (one attribute, one service, or the whole configuration when the
// service name is empty and Fatal is set); warnings and notices never do.
type Severity int

const (
	SevNotice Severity = iota
	SevWarning
	SevError
)

func (s Severity) String() string {
	switch s {
	case SevNotice:
		return "notice"
	case SevWarning:
		return "warning"
	default:
		return "error"
	}
}

// MarshalText makes severities read as words in the check mode's JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText is MarshalText's inverse, so the JSON round-trips.
func (s *Severity) UnmarshalText(b []byte) error {
	switch string(b) {
	case "notice":
		*s = SevNotice
	case "warning":
		*s = SevWarning
	case "error":
		*s = SevError
	default:
		return fmt.Errorf("service: unknown severity %q", b)
	}
	return nil
}

// Diag is one message about the configuration. Code is short and stable
// (E-ATTR-VALUE, W-HASH-VALUE, ...) so that scripts and tests can match on
// it; Msg reads like xinetd's own message where xinetd has one.
type Diag struct {
	Pos      Source   `json:"pos"`
	Severity Severity `json:"severity"`
	Code     string   `json:"code"`
	Service  string   `json:"service,omitempty"` // service id (or name), "defaults", or empty for file-level messages
	Attr     string   `json:"attr,omitempty"`
	Msg      string   `json:"msg"`
	// IncludedFrom is the include chain, innermost first, for messages
	// about files reached through include/includedir.
	IncludedFrom []Source `json:"included_from,omitempty"`
	// Fatal marks an error that makes the whole configuration unusable
	// (the main file cannot be read, a bad value in defaults).
	Fatal bool `json:"fatal,omitempty"`
}

// String formats the diagnostic as
//
//	file:line:col: error E-ATTR-VALUE: service echo: only_from: msg (included from f:3)
func (d Diag) String() string {
	var b strings.Builder
	b.WriteString(d.Pos.String())
	b.WriteString(": ")
	b.WriteString(d.Severity.String())
	if d.Code != "" {
		b.WriteString(" ")
		b.WriteString(d.Code)
	}
	b.WriteString(": ")
	if d.Service != "" {
		if d.Service == "defaults" {
			b.WriteString("defaults: ")
		} else {
			b.WriteString("service ")
			b.WriteString(d.Service)
			b.WriteString(": ")
		}
	}
	if d.Attr != "" {
		b.WriteString(d.Attr)
		b.WriteString(": ")
	}
	b.WriteString(d.Msg)
	for _, inc := range d.IncludedFrom {
		b.WriteString(" (included from ")
		b.WriteString(inc.String())
		b.WriteString(")")
	}
	return b.String()
}

// Diags is a list of diagnostics in the order they were found. It
// implements error so that a caller that only wants "did it work" can
// treat it as one.
type Diags []Diag

// HasErrors reports whether any diagnostic is an error.
func (ds Diags) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == SevError {
			return true
		}
	}
	return false
}

// HasFatal reports whether any diagnostic makes the whole configuration
// unusable.
func (ds Diags) HasFatal() bool {
	for _, d := range ds {
		if d.Fatal {
			return true
		}
	}
	return false
}

// Errors returns only the error diagnostics.
func (ds Diags) Errors() Diags {
	var out Diags
	for _, d := range ds {
		if d.Severity == SevError {
			out = append(out, d)
		}
	}
	return out
}

// Error joins the messages, one per line.
func (ds Diags) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}
