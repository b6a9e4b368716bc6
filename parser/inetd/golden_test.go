package inetd

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/internal/sysdb"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// testDB points every lookup at testdata/root.
func testDB(t testing.TB) *sysdb.DB {
	t.Helper()
	// Relative, so that messages naming the files read the same on every machine.
	return &sysdb.DB{Root: "testdata/root"}
}

// optsFromHeader reads a `#!opts key=value ...` first line, so each
// golden input says how it is parsed.
func optsFromHeader(t *testing.T, data []byte, db *sysdb.DB) Options {
	opt := Options{Sys: db}
	first, _, _ := bytes.Cut(data, []byte("\n"))
	rest, ok := strings.CutPrefix(string(first), "#!opts")
	if !ok {
		return opt
	}
	for _, kv := range strings.Fields(rest) {
		k, v, _ := strings.Cut(kv, "=")
		n, _ := strconv.Atoi(v)
		switch k {
		case "dialect":
			opt.Dialect = v
		case "c":
			opt.MaxChild = n
		case "C":
			opt.PerIPPerMinute = n
		case "R":
			opt.PerMinute = n
		case "s":
			opt.MaxChildPerIP = n
		case "a":
			opt.BindAddr = v
		default:
			t.Fatalf("unknown #!opts key %q", k)
		}
	}
	return opt
}

// dump prints every non-zero field of every service, in model order,
// then every diagnostic: the golden form of a parse.
func dump(svcs []*service.Service, diags service.Diags) string {
	var b strings.Builder
	for _, s := range svcs {
		fmt.Fprintf(&b, "service %s\n", s.ID)
		rv := reflect.ValueOf(s).Elem()
		rt := rv.Type()
		for i := 0; i < rt.NumField(); i++ {
			f := rv.Field(i)
			fn := rt.Field(i).Name
			if f.IsZero() && fn != "Family" || fn == "Reasons" || fn == "Language" {
				continue
			}
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			switch fn {
			case "Src":
				fmt.Fprintf(&b, "\t%s: %s\n", name, s.Src)
				continue
			case "Origins":
				keys := make([]string, 0, s.Origins.Len())
				for k := range s.Origins.All() {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				fmt.Fprintf(&b, "\t%s:", name)
				for _, k := range keys {
					o := s.Origins.At(k)
					if o.Line > 0 {
						fmt.Fprintf(&b, " %s=%d:%d", k, o.Line, o.Col)
					} else {
						fmt.Fprintf(&b, " %s=<%s>", k, o.Origin)
					}
				}
				b.WriteByte('\n')
				continue
			}
			j, err := json.Marshal(f.Interface())
			if err != nil {
				j = []byte("!" + err.Error())
			}
			fmt.Fprintf(&b, "\t%s: %s\n", name, j)
		}
	}
	b.WriteString("----------\n")
	for _, d := range diags {
		b.WriteString(d.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	db := testDB(t)
	files, err := filepath.Glob("testdata/golden/*.conf")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".conf")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			svcs, diags := Parse(filepath.Base(f), data, optsFromHeader(t, data, db))
			got := dump(svcs, diags)
			want := strings.TrimSuffix(f, ".conf") + ".golden"
			if *update {
				if err := os.WriteFile(want, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			exp, err := os.ReadFile(want)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(exp) {
				t.Errorf("parse of %s differs from %s (run go test -update and review the diff):\n%s", f, want, lineDiff(string(exp), got))
			}
		})
	}
}

// lineDiff shows the first lines that differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, c string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			c = g[i]
		}
		if a != c {
			fmt.Fprintf(&b, "line %d:\n  want %s\n  got  %s\n", i+1, a, c)
			if shown++; shown >= 10 {
				break
			}
		}
	}
	return b.String()
}
