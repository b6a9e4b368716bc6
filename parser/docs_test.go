package parser

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../docs/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDocsCoverLanguage keeps docs/config.md and the man page in step with
// the attribute table and the diagnostic codes.
func TestDocsCoverLanguage(t *testing.T) {
	md, man := readDoc(t, "config.md"), readDoc(t, "gxinetd.conf.5")
	for _, a := range AttributeNames() {
		if !strings.Contains(md, "`"+a+"`") {
			t.Errorf("config.md does not document attribute %s", a)
		}
		if !strings.Contains(man, a) {
			t.Errorf("gxinetd.conf.5 does not mention attribute %s", a)
		}
		if attrSpecs[a].gxinetd && !regexp.MustCompile("`"+a+"`[^|\n]*\\*\\*gxinetd\\*\\*").MatchString(md) {
			t.Errorf("config.md does not mark %s as a gxinetd attribute", a)
		}
	}
	if !strings.Contains(md, "](migration.md#differs-and-why)") {
		t.Error("config.md does not link to the differences table in migration.md")
	}
}

// codeRE matches a message code as the sources spell it: a Go string
// literal such as "E-ATTR-VALUE" or "N-DIALECT-CHOSEN".
var codeRE = regexp.MustCompile(`"([EWN]-[A-Z0-9]+(?:-[A-Z0-9]+)*)"`)

// sourceCodes returns every message code written in the repository's Go
// sources (tests excluded), with one file that writes it.
func sourceCodes(t *testing.T, root string) map[string]string {
	t.Helper()
	codes := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range codeRE.FindAllSubmatch(b, -1) {
			if _, ok := codes[string(m[1])]; !ok {
				codes[string(m[1])] = path
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return codes
}

// codeRows returns the codes named in the first cell of a table row of a
// markdown document ("| `E-USER`, `E-GROUP` | ..."): where config.md
// explains them.
func codeRows(doc string) map[string]bool {
	rows := map[string]bool{}
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		first, _, _ := strings.Cut(line[1:], "|")
		for _, m := range regexp.MustCompile("`([EWN]-[A-Z0-9-]+)`").FindAllStringSubmatch(first, -1) {
			rows[m[1]] = true
		}
	}
	return rows
}

// TestEveryCodeDocumented: every message code the sources can emit, in
// either configuration language, the check mode or the daemon, has a row
// in docs/config.md's diagnostics tables, and no row names a code that
// nothing emits. Adding a code without documenting it fails here.
func TestEveryCodeDocumented(t *testing.T) {
	codes := sourceCodes(t, "..")
	if len(codes) < 50 {
		t.Fatalf("found only %d codes in the sources: is the walk broken?", len(codes))
	}
	rows := codeRows(readDoc(t, "config.md"))
	for c, file := range codes {
		if !rows[c] {
			t.Errorf("code %s (written in %s) has no row in docs/config.md's diagnostics tables", c, file)
		}
	}
	for c := range rows {
		if _, ok := codes[c]; !ok {
			t.Errorf("docs/config.md documents code %s, which no source emits", c)
		}
	}
	// check-json.md carries the codes in Diag.code: it points to the one list.
	if !strings.Contains(readDoc(t, "check-json.md"), "](config.md#diagnostics)") {
		t.Error("check-json.md does not link to config.md#diagnostics for the codes")
	}
}

// TestDocsExamplesParse parses every ```xinetd block of the docs.
func TestDocsExamplesParse(t *testing.T) {
	re := regexp.MustCompile("(?s)```xinetd\n(.*?)```")
	n := 0
	for _, name := range []string{"config.md"} {
		for _, m := range re.FindAllStringSubmatch(readDoc(t, name), -1) {
			n++
			cfg := parseText(t, m[1])
			if cfg.Diags.HasErrors() || len(cfg.Accepted()) == 0 {
				t.Errorf("%s example %d:\n%s\n%v", name, n, m[1], cfg.Diags)
			}
		}
	}
	if n == 0 {
		t.Error("no examples found")
	}
}

// TestCheckJSONDocumented checks that docs/check-json.md names every JSON
// field of the model.
func TestCheckJSONDocumented(t *testing.T) {
	doc := readDoc(t, "check-json.md")
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(ty reflect.Type) {
		for ty.Kind() == reflect.Pointer || ty.Kind() == reflect.Slice || ty.Kind() == reflect.Map {
			ty = ty.Elem()
		}
		if ty.Kind() != reflect.Struct || seen[ty] || ty.PkgPath() != reflect.TypeOf(service.Config{}).PkgPath() {
			return
		}
		seen[ty] = true
		for i := 0; i < ty.NumField(); i++ {
			f := ty.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			if !strings.Contains(doc, "`"+name+"`") {
				t.Errorf("check-json.md does not document %s.%s (%q)", ty.Name(), f.Name, name)
			}
			walk(f.Type)
		}
	}
	walk(reflect.TypeOf(service.Config{}))
}
