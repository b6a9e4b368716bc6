package parser

import (
	"strings"
	"testing"

	sockaddrtmpl "github.com/hashicorp/go-sockaddr/template"
)

// TestSockaddrTemplateAgrees runs every template through this package's
// evaluator and through go-sockaddr's own template package (text/template;
// linked into the test only) on this host, and requires the same text, or
// an error from both.
func TestSockaddrTemplateAgrees(t *testing.T) {
	for _, tmpl := range []string{
		`{{ GetAllInterfaces | include "name" "^lo$" | join "address" " " }}`,
		`{{GetAllInterfaces|include "name" "^lo$"|attr "address"}}`,
		`{{ GetInterfaceIP "lo" }}`,
		`{{ GetInterfaceIPs "lo" }}`,
		`{{ GetInterfaceIP "nosuch0" }}`,
		`{{ GetPrivateIP }}`,
		`{{ GetPrivateIPs }}`,
		`{{ GetPublicIP }}`,
		`{{ GetPublicIPs }}`,
		`{{ GetAllInterfaces | include "type" "IPv4" | sort "-address" | join "address" " " }}`,
		`{{ GetAllInterfaces | include "rfc" "1918" | join "address" " " }}`,
		`{{ GetAllInterfaces | include "network" "127.0.0.0/8" | attr "address" }}`,
		`{{ GetAllInterfaces | exclude "type" "IPv6" | limit 1 | attr "address" }}`,
		`{{ GetAllInterfaces | offset 1 | limit 2 | join "name" "," }}`,
		`{{ GetAllInterfaces | offset -1 | join "name" "," }}`,
		`{{ GetAllInterfaces | unique "name" | join "name" " " }}`,
		`{{ GetAllInterfaces | include "name" "^lo$" | include "type" "IPv4" | math "address" "+2" | attr "address" }}`,
		`{{ GetAllInterfaces | include "flag" "loopback" | sort "+type,+address" | join "address" " " }}`,
		"  {{- GetInterfaceIP \"lo\" -}}  \n",
		`a {{/* a comment */}} b`,
		`{{ . | include "name" "^lo$" | join "address" " " }}`,
		`{{ (GetAllInterfaces | include "name" "^lo$") | attr "address" }}`,
		`{{ GetPrivateInterfaces | attr "address" }}`,
		`{{ GetDefaultInterfaces | join "address" " " }}`,
		`{{ GetPublicInterfaces | join "address" " " }}`,
		`{{ "10.1.2.3" }}`,
		"{{ `10.1.2.4` }} {{ \"::1\" }}",
		`10.0.0.1`,
		`{{ "a}}b" }}`,
		// Errors, in both.
		`{{ GetNothing }}`,
		`{{ GetInterfaceIP }}`,
		`{{ GetAllInterfaces | include "name" }}`,
		`{{ GetAllInterfaces | include "nosuchselector" "x" | attr "address" }}`,
		`{{ GetAllInterfaces | limit "x" | attr "address" }}`,
		`{{ GetAllInterfaces | attr "nosuchattr" }}`,
		`{{ GetInterfaceIP "lo" | attr "address" }}`,
		`{{ GetPrivateIP `,
		`{{ "unterminated }}`,
		`{{ | GetAllInterfaces }}`,
		`{{ GetAllInterfaces | include "name" ("lo" }}`,
	} {
		want, werr := sockaddrtmpl.Parse(tmpl)
		got, gerr := parseSockaddrTemplate(tmpl)
		if (werr != nil) != (gerr != nil) || got != want {
			t.Errorf("%s:\n go-sockaddr: %q, %v\n here:        %q, %v", tmpl, want, werr, got, gerr)
		}
	}
}

// TestSockaddrTemplateUnsupported: what is not a pipeline is refused with
// a message that says so (text/template would run it).
func TestSockaddrTemplateUnsupported(t *testing.T) {
	for tmpl, msg := range map[string]string{
		`{{ if true }}10.0.0.1{{ end }}`:                       `"if" is not supported`,
		`{{ range GetAllInterfaces }}x{{ end }}`:               `"range" is not supported`,
		`{{ $a := GetPrivateIP }}{{ $a }}`:                     "variables are not supported",
		`{{ GetAllInterfaces | }}`:                             "missing command", // text/template prints the interfaces
		`{{ GetAllInterfaces }}`:                               "not text: end the pipeline with attr or join",
		`{{ GetAllInterfaces | include "name" GetPrivateIP }}`: "must be in parentheses",
	} {
		_, err := parseSockaddrTemplate(tmpl)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want %q", tmpl, err, msg)
		}
	}
}

// FuzzCompileTemplate: no template text makes the compiler panic or loop,
// and what compiles has only known functions.
func FuzzCompileTemplate(f *testing.F) {
	for _, s := range []string{`{{ GetAllInterfaces | include "name" "^lo$" | join "address" " " }}`, "{{- GetPrivateIP -}}",
		`{{ (GetAllInterfaces | limit 1) | attr "address" }}`, `{{/* c */}}`, "{{ `raw` }}", `{{ "a\"}}" }}`, `{{{{}}}}`, `{{(`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parts, err := compileTemplate(s)
		if err != nil {
			return
		}
		var walk func(p []tmplCmd)
		walk = func(p []tmplCmd) {
			for _, c := range p {
				if _, ok := tmplFuncs[c.fn]; c.fn != "" && !ok {
					t.Fatalf("unknown function %q compiled", c.fn)
				}
				walk(c.sub)
				walk(c.args)
			}
		}
		for _, p := range parts {
			walk(p.pipe)
		}
	})
}
