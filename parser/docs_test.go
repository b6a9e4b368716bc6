package parser

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

var allCodes = []string{CodeSyntax, CodeAttrUnknown, CodeAttrDefaults, CodeAttrValue, CodeAttrCount, CodeOperator,
	CodeAlreadySet, CodeMissingAttr, CodeDuplicate, CodeEntry, CodePort, CodeBuiltin, CodeDefaultsDup, CodeFile,
	CodeInclude, CodeIncludeCycle, CodeOwnership, CodeLineTooLong, CodeServer, WarnHashValue, WarnNoSpace, WarnCRLF,
	WarnBraceSameLine, WarnTrailing, WarnArgsOrder, WarnDefaultsLate, WarnObsolete, WarnPassenv, WarnUnresolved,
	WarnInterface, WarnFamily, WarnUserID113, WarnIntercept, WarnDuplicateID, WarnRelativePath, NoticeSkippedFile,
	NoticeDisabled, WarnInlineComment, WarnAttrUnknown, NoticeBindTemplate, CodeSandbox, CodeSandboxHost, CodeSeccomp,
	WarnSandbox}

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
	for _, c := range allCodes {
		if !strings.Contains(md, "`"+c+"`") {
			t.Errorf("config.md does not list code %s", c)
		}
	}
	if !strings.Contains(md, "## Differences from xinetd 2.3.15") {
		t.Error("config.md lacks the differences section")
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
