package seccomp

import (
	"os"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string // "line:col: substring"
	}{
		{"unknown call", "deny ptrace ptrase\n", []string{"1:13: unknown system call \"ptrase\"; did you mean ptrace?"}},
		{"unknown group", "\n  deny @mounts\n", []string{"2:8: unknown group \"@mounts\""}},
		{"unknown action", "forbid ptrace\n", []string{"1:1: unknown action or keyword \"forbid\""}},
		{"bad errno", "errno:EWHAT open\nerrno:0 open\nerrno:5000 open\n", []string{"1:1: unknown action", "2:1: unknown action", "3:1: unknown action"}},
		{"default twice", "default allow\ndefault deny\n", []string{"2:1: default is already set on line 1"}},
		{"default without action", "default\n", []string{"1:1: default takes one action"}},
		{"default bad action", "default maybe\n", []string{"1:9: unknown action \"maybe\""}},
		{"include unknown", "include strict\n", []string{"1:9: unknown built-in profile \"strict\""}},
		{"include nothing", "include\n", []string{"1:1: include takes one built-in profile name"}},
		{"action alone", "deny\n", []string{"1:1: deny needs at least one system call"}},
		{"always allowed", "deny exit_group\nerrno:EPERM rt_sigprocmask\n", []string{"1:6: exit_group is always allowed", "2:13: rt_sigprocmask is always allowed"}},
		{"every error", "deny nosuch1\ndeny nosuch2\n", []string{"1:6: unknown system call", "2:6: unknown system call"}},
		{"nul", "deny read\x00\n", []string{"1:1: line contains a NUL byte"}},
		{"too large", strings.Repeat("#", maxProfile+1), []string{"1:1: profile is too large"}},
	}
	for _, c := range cases {
		p, errs := Parse("t", []byte(c.text))
		if p != nil {
			t.Errorf("%s: parsed despite errors", c.name)
		}
		if len(errs) != len(c.want) {
			t.Errorf("%s: got %d errors %v, want %d", c.name, len(errs), errs, len(c.want))
			continue
		}
		for i, w := range c.want {
			if !strings.HasPrefix(errs[i].Error(), w) && !strings.Contains(errs[i].Error(), w) {
				t.Errorf("%s: error %d is %q, want %q", c.name, i, errs[i], w)
			}
		}
	}
}

func TestParseAccepts(t *testing.T) {
	text := "# a CTF challenge's profile\n" +
		"default allow   # everything else\n" +
		"include default\n" +
		"\tdeny execve execveat   # no shells\n" +
		"errno:EPERM socket\r\n" +
		"allow @clock\n" +
		"log open\n"
	p, errs := Parse("ctf", []byte(text))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	last := p.Rules[len(p.Rules)-1]
	if last.Syscall != "open" || last.Action.Kind != Log || last.Line != 7 || last.Col != 5 {
		t.Errorf("last rule %+v", last)
	}
	var sawExec bool
	for _, r := range p.Rules {
		if r.Syscall == "execveat" && r.Action.Kind == Kill && r.Line == 4 && r.Col != 0 {
			sawExec = true
		}
	}
	if !sawExec {
		t.Error("deny execveat not recorded with its position")
	}
	for _, a := range arches {
		if _, err := Compile(p, a); err != nil {
			t.Errorf("%s: %v", a.Name, err)
		}
	}
}

// TestGroupsNameKnownCalls keeps the groups honest: every member is a
// system call on some architecture, and each exists on amd64 or arm64.
func TestGroupsNameKnownCalls(t *testing.T) {
	for g, ms := range groups {
		for _, m := range ms {
			if !Known(m.name) {
				t.Errorf("%s: %s is no system call on any architecture", g, m.name)
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"include default\ndeny execve\n",
		"default deny\nallow read write exit_group\nerrno:EPERM socket\n",
		"default errno:ENOSYS\nlog @mount @ptrace\n",
		"deny @raw-sockets\nallow socket\n",
		"default\ninclude\nerrno:\n\x00\n#\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, errs := Parse("fuzz", []byte(s))
		lines := strings.Count(s, "\n") + 1
		for _, e := range errs {
			if e.Line < 1 || e.Line > lines || e.Col < 1 {
				t.Fatalf("error outside the input: %v", e)
			}
		}
		if (p == nil) == (len(errs) == 0) {
			t.Fatalf("profile %v with errors %v", p, errs)
		}
		if p == nil {
			return
		}
		for _, a := range arches {
			prog, err := Compile(p, a)
			if err != nil {
				if strings.Contains(err.Error(), "instructions") {
					continue
				}
				t.Fatal(err)
			}
			ins := prog.Instructions()
			for n := int32(0); n < 460; n += 7 {
				if _, err := run(ins, data{nr: n, arch: a.Audit}); err != nil {
					t.Fatalf("%s nr %d: %v", a.Name, n, err)
				}
			}
		}
	})
}

// TestGroupsDocumented keeps docs/sandbox.md's table of the default
// profile in step with the groups: every group and every member named.
func TestGroupsDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/sandbox.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, g := range GroupNames() {
		row := ""
		for _, l := range strings.Split(doc, "\n") {
			if strings.HasPrefix(l, "| `"+g+"` |") {
				row = l
			}
		}
		if row == "" {
			t.Errorf("docs/sandbox.md has no row for %s", g)
			continue
		}
		for _, m := range groups[g] {
			if !strings.Contains(row, m.name) {
				t.Errorf("docs/sandbox.md: %s row lacks %s", g, m.name)
			}
		}
	}
}
