package parser

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	sockaddr "github.com/hashicorp/go-sockaddr"
)

// A go-sockaddr template evaluator for bind values.
//
// go-sockaddr's own template package runs text/template, and
// text/template calls methods by name through reflect: once that is in a
// binary, the linker must keep every exported method of every type that
// could reach it, which made gxinetd 3 MB (a quarter) larger for every
// configuration, templates or not. Bind templates are pipelines of
// go-sockaddr functions with literal arguments, so that is what this
// evaluates: text outside actions, {{ }} actions with "{{-"/"-}}" trim
// markers and comments, pipelines of commands joined by "|", each a
// go-sockaddr function (the full set of its template package: sources,
// sort, include/exclude, attr, join, limit, offset, unique, math and the
// Get*IP* helpers), "." (all interfaces), a string, raw-string or number
// literal, or a parenthesized pipeline, the piped value passed as the
// last argument, as text/template does. Anything else (variables, if,
// range, with, define) is an error that says so. A test runs every
// example through both this and go-sockaddr's template package and
// requires the same output.

// tmplFunc is one go-sockaddr function: it receives the literal
// arguments and, for a command after "|", the piped value last.
type tmplFunc struct {
	args int // arguments, the piped one included
	call func(a []any) (any, error)
}

func strArg(a any, fn string, i int) (string, error) {
	if s, ok := a.(string); ok {
		return s, nil
	}
	return "", fmt.Errorf("wrong type for value; expected string; got %T (argument %d of %s)", a, i+1, fn)
}

func ifsArg(a any, fn string) (sockaddr.IfAddrs, error) {
	if v, ok := a.(sockaddr.IfAddrs); ok {
		return v, nil
	}
	return nil, fmt.Errorf("wrong type for value; expected sockaddr.IfAddrs; got %T (last argument of %s)", a, fn)
}

func numArg(a any, fn string) (int64, error) {
	if n, ok := a.(int64); ok {
		return n, nil
	}
	return 0, fmt.Errorf("wrong type for value; expected a number; got %T (first argument of %s)", a, fn)
}

func source(f func() (sockaddr.IfAddrs, error)) tmplFunc {
	return tmplFunc{0, func([]any) (any, error) { return f() }}
}

func ipHelper(f func() (string, error)) tmplFunc {
	return tmplFunc{0, func([]any) (any, error) { return f() }}
}

func ifHelper(name string, f func(string) (string, error)) tmplFunc {
	return tmplFunc{1, func(a []any) (any, error) {
		s, err := strArg(a[0], name, 0)
		if err != nil {
			return nil, err
		}
		return f(s)
	}}
}

// strsIfs is a function of n-1 strings and an IfAddrs giving T.
func strsIfs[T any](name string, n int, f func(s []string, in sockaddr.IfAddrs) (T, error)) tmplFunc {
	return tmplFunc{n, func(a []any) (any, error) {
		s := make([]string, n-1)
		for i := range s {
			var err error
			if s[i], err = strArg(a[i], name, i); err != nil {
				return nil, err
			}
		}
		in, err := ifsArg(a[n-1], name)
		if err != nil {
			return nil, err
		}
		return f(s, in)
	}}
}

var tmplFuncs = map[string]tmplFunc{
	"GetAllInterfaces":     source(sockaddr.GetAllInterfaces),
	"GetDefaultInterfaces": source(sockaddr.GetDefaultInterfaces),
	"GetPrivateInterfaces": source(sockaddr.GetPrivateInterfaces),
	"GetPublicInterfaces":  source(sockaddr.GetPublicInterfaces),
	"sort": strsIfs("sort", 2, func(s []string, in sockaddr.IfAddrs) (sockaddr.IfAddrs, error) {
		return sockaddr.SortIfBy(s[0], in)
	}),
	"exclude": strsIfs("exclude", 3, func(s []string, in sockaddr.IfAddrs) (sockaddr.IfAddrs, error) {
		return sockaddr.ExcludeIfs(s[0], s[1], in)
	}),
	"include": strsIfs("include", 3, func(s []string, in sockaddr.IfAddrs) (sockaddr.IfAddrs, error) {
		return sockaddr.IncludeIfs(s[0], s[1], in)
	}),
	"attr": {2, func(a []any) (any, error) {
		sel, err := strArg(a[0], "attr", 0)
		if err != nil {
			return nil, err
		}
		switch v := a[1].(type) {
		case sockaddr.IfAddr:
			return sockaddr.IfAttr(sel, v)
		case sockaddr.IfAddrs:
			return sockaddr.IfAttrs(sel, v)
		}
		return nil, fmt.Errorf("unable to obtain attribute %s from type %T (%v)", sel, a[1], a[1])
	}},
	"join": strsIfs("join", 3, func(s []string, in sockaddr.IfAddrs) (string, error) {
		return sockaddr.JoinIfAddrs(s[0], s[1], in)
	}),
	"limit": {2, func(a []any) (any, error) {
		n, err := numArg(a[0], "limit")
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, fmt.Errorf("limit: %d is negative", n)
		}
		in, err := ifsArg(a[1], "limit")
		if err != nil {
			return nil, err
		}
		return sockaddr.LimitIfAddrs(uint(n), in)
	}},
	"offset": {2, func(a []any) (any, error) {
		n, err := numArg(a[0], "offset")
		if err != nil {
			return nil, err
		}
		in, err := ifsArg(a[1], "offset")
		if err != nil {
			return nil, err
		}
		return sockaddr.OffsetIfAddrs(int(n), in)
	}},
	"unique": strsIfs("unique", 2, func(s []string, in sockaddr.IfAddrs) (sockaddr.IfAddrs, error) {
		return sockaddr.UniqueIfAddrsBy(s[0], in)
	}),
	"math": strsIfs("math", 3, func(s []string, in sockaddr.IfAddrs) (sockaddr.IfAddrs, error) {
		return sockaddr.IfAddrsMath(s[0], s[1], in)
	}),
	"GetPrivateIP":    ipHelper(sockaddr.GetPrivateIP),
	"GetPrivateIPs":   ipHelper(sockaddr.GetPrivateIPs),
	"GetPublicIP":     ipHelper(sockaddr.GetPublicIP),
	"GetPublicIPs":    ipHelper(sockaddr.GetPublicIPs),
	"GetInterfaceIP":  ifHelper("GetInterfaceIP", sockaddr.GetInterfaceIP),
	"GetInterfaceIPs": ifHelper("GetInterfaceIPs", sockaddr.GetInterfaceIPs),
}

// tmplPart is text, or an action's pipeline.
type tmplPart struct {
	text string
	pipe []tmplCmd // nil for text (and comments)
}

// tmplCmd is one command of a pipeline: a function with arguments, ".",
// a literal, or a parenthesized pipeline.
type tmplCmd struct {
	fn   string
	dot  bool
	lit  any // string or int64
	sub  []tmplCmd
	args []tmplCmd // each a literal or a parenthesized pipeline
}

// compileTemplate parses a bind template.
func compileTemplate(in string) ([]tmplPart, error) {
	var parts []tmplPart
	rest := in
	trimNext := false
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if trimNext {
				rest = strings.TrimLeft(rest, " \t\r\n")
			}
			if rest != "" {
				parts = append(parts, tmplPart{text: rest})
			}
			return parts, nil
		}
		text := rest[:i]
		if trimNext {
			text = strings.TrimLeft(text, " \t\r\n")
		}
		body := rest[i+2:]
		if strings.HasPrefix(body, "- ") || strings.HasPrefix(body, "-\t") || strings.HasPrefix(body, "-\n") {
			text = strings.TrimRight(text, " \t\r\n")
			body = body[1:]
		}
		if text != "" {
			parts = append(parts, tmplPart{text: text})
		}
		end := actionEnd(body)
		if end < 0 {
			return nil, errors.New("unclosed action")
		}
		action := body[:end]
		rest = body[end+2:]
		trimNext = false
		if n := len(action); n >= 2 && action[n-1] == '-' && (action[n-2] == ' ' || action[n-2] == '\t' || action[n-2] == '\n') {
			trimNext = true
			action = action[:n-1]
		}
		a := strings.TrimSpace(action)
		if strings.HasPrefix(a, "/*") {
			if !strings.HasSuffix(a, "*/") {
				return nil, errors.New("unclosed comment")
			}
			continue
		}
		toks, err := tmplTokens(a)
		if err != nil {
			return nil, err
		}
		pipe, rest2, err := parsePipeline(toks)
		if err != nil {
			return nil, err
		}
		if len(rest2) > 0 {
			return nil, fmt.Errorf("unexpected %q in action", rest2[0])
		}
		parts = append(parts, tmplPart{pipe: pipe})
	}
}

// actionEnd finds the "}}" that closes an action, outside string literals.
func actionEnd(s string) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		case '`':
			for i++; i < len(s) && s[i] != '`'; i++ {
			}
		case '}':
			if i+1 < len(s) && s[i+1] == '}' {
				return i
			}
		}
	}
	return -1
}

// tmplTokens splits an action into identifiers, literals (strings keep
// their quotes), "|", "(", ")" and ".".
func tmplTokens(a string) ([]string, error) {
	var out []string
	for i := 0; i < len(a); {
		c := a[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '|' || c == '(' || c == ')':
			out = append(out, a[i:i+1])
			i++
		case c == '"':
			j := i + 1
			for j < len(a) && a[j] != '"' {
				if a[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(a) {
				return nil, errors.New("unterminated quoted string")
			}
			out = append(out, a[i:j+1])
			i = j + 1
		case c == '`':
			j := strings.IndexByte(a[i+1:], '`')
			if j < 0 {
				return nil, errors.New("unterminated raw quoted string")
			}
			out = append(out, a[i:i+j+2])
			i += j + 2
		case c == '$':
			return nil, errors.New("variables are not supported in bind templates")
		default:
			j := i
			for j < len(a) && !strings.ContainsRune(" \t\r\n|()\"`", rune(a[j])) {
				j++
			}
			out = append(out, a[i:j])
			i = j
		}
	}
	return out, nil
}

func parsePipeline(toks []string) ([]tmplCmd, []string, error) {
	var pipe []tmplCmd
	for {
		cmd, rest, err := parseCommand(toks)
		if err != nil {
			return nil, nil, err
		}
		pipe = append(pipe, cmd)
		toks = rest
		if len(toks) == 0 || toks[0] != "|" {
			return pipe, toks, nil
		}
		toks = toks[1:]
	}
}

func parseCommand(toks []string) (tmplCmd, []string, error) {
	if len(toks) == 0 {
		return tmplCmd{}, nil, errors.New("missing command")
	}
	head, err := parseOperand(toks)
	if err != nil {
		return tmplCmd{}, nil, err
	}
	cmd, toks := head.cmd, head.rest
	if cmd.fn == "" {
		return cmd, toks, nil // a literal, ".", or (pipeline): no arguments
	}
	for len(toks) > 0 && toks[0] != "|" && toks[0] != ")" {
		arg, err := parseOperand(toks)
		if err != nil {
			return tmplCmd{}, nil, err
		}
		if arg.cmd.fn != "" {
			return tmplCmd{}, nil, fmt.Errorf("%s: a function as an argument must be in parentheses", arg.cmd.fn)
		}
		cmd.args = append(cmd.args, arg.cmd)
		toks = arg.rest
	}
	return cmd, toks, nil
}

type operand struct {
	cmd  tmplCmd
	rest []string
}

func parseOperand(toks []string) (operand, error) {
	t := toks[0]
	switch {
	case t == "(":
		pipe, rest, err := parsePipeline(toks[1:])
		if err != nil {
			return operand{}, err
		}
		if len(rest) == 0 || rest[0] != ")" {
			return operand{}, errors.New("unclosed left paren")
		}
		return operand{tmplCmd{sub: pipe}, rest[1:]}, nil
	case t == ".":
		return operand{tmplCmd{dot: true}, toks[1:]}, nil
	case t[0] == '"' || t[0] == '`':
		s, err := strconv.Unquote(t)
		if err != nil {
			return operand{}, fmt.Errorf("bad string %s", t)
		}
		return operand{tmplCmd{lit: s}, toks[1:]}, nil
	case t[0] == '-' || t[0] == '+' || (t[0] >= '0' && t[0] <= '9'):
		n, err := strconv.ParseInt(t, 0, 64)
		if err != nil {
			return operand{}, fmt.Errorf("bad number %s", t)
		}
		return operand{tmplCmd{lit: n}, toks[1:]}, nil
	case t == "|" || t == ")":
		return operand{}, fmt.Errorf("unexpected %q", t)
	}
	switch t {
	case "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue":
		return operand{}, fmt.Errorf("%q is not supported in bind templates (only pipelines of go-sockaddr functions)", t)
	}
	if _, ok := tmplFuncs[t]; !ok {
		return operand{}, fmt.Errorf("function %q not defined", t)
	}
	return operand{tmplCmd{fn: t}, toks[1:]}, nil
}

// run executes a compiled template and returns its text.
func runTemplate(parts []tmplPart) (string, error) {
	var b strings.Builder
	var all sockaddr.IfAddrs // ".", made on first use
	for _, p := range parts {
		if p.pipe == nil {
			b.WriteString(p.text)
			continue
		}
		v, err := runPipe(p.pipe, &all)
		if err != nil {
			return "", err
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("the template gives a %T, not text: end the pipeline with attr or join", v)
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

func runPipe(pipe []tmplCmd, all *sockaddr.IfAddrs) (any, error) {
	var v any
	for i, c := range pipe {
		var args []any
		for _, a := range c.args {
			av, err := runOperand(a, all)
			if err != nil {
				return nil, err
			}
			args = append(args, av)
		}
		if c.fn == "" {
			if i > 0 {
				return nil, errors.New("a value cannot take the pipeline's input: only functions can")
			}
			var err error
			if v, err = runOperand(c, all); err != nil {
				return nil, err
			}
			continue
		}
		if i > 0 {
			args = append(args, v)
		}
		f := tmplFuncs[c.fn]
		if len(args) != f.args {
			return nil, fmt.Errorf("wrong number of args for %s: want %d got %d", c.fn, f.args, len(args))
		}
		var err error
		if v, err = f.call(args); err != nil {
			return nil, fmt.Errorf("error calling %s: %w", c.fn, err)
		}
	}
	return v, nil
}

func runOperand(c tmplCmd, all *sockaddr.IfAddrs) (any, error) {
	switch {
	case c.sub != nil:
		return runPipe(c.sub, all)
	case c.dot:
		if *all == nil {
			a, err := sockaddr.GetAllInterfaces()
			if err != nil {
				return nil, err
			}
			*all = a
		}
		return *all, nil
	}
	return c.lit, nil
}

// parseSockaddrTemplate evaluates a bind template on this host.
func parseSockaddrTemplate(in string) (string, error) {
	parts, err := compileTemplate(in)
	if err != nil {
		return "", err
	}
	return runTemplate(parts)
}
