package service

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"testing"
	"unsafe"
)

// TestOriginsActsAsAMap runs the same operations on an Origins and on the
// map[string]Source it replaced, and compares every read.
func TestOriginsActsAsAMap(t *testing.T) {
	srcs := []Source{
		{File: "/etc/xinetd.d/a", Line: 3, Col: 2},
		{File: "/etc/xinetd.conf", Line: 12, Col: 9, Origin: "defaults"},
		{Origin: "default"},
		{Origin: "flag"},
		{File: "/etc/inetd.conf", Line: 1 << 20, Col: 1, Origin: "inetd.conf"},
		{},
	}
	attrs := []string{"port", "bind", "cps", "instances", "only_from", "a", "zzz", "per_source_prefix", "log_type"}
	var o Origins
	m := map[string]Source{}
	check := func(step string) {
		t.Helper()
		if o.Len() != len(m) {
			t.Fatalf("%s: Len %d, map has %d", step, o.Len(), len(m))
		}
		for _, a := range append(attrs, "never-set") {
			got, ok := o.Get(a)
			want, wok := m[a]
			if ok != wok || got != want || o.Has(a) != wok || o.At(a) != want {
				t.Fatalf("%s: Get(%q) = %+v %v, want %+v %v", step, a, got, ok, want, wok)
			}
		}
		got := maps.Collect(o.All())
		if len(m) == 0 {
			got = map[string]Source{}
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%s: All() = %v, want %v", step, got, m)
		}
		prev := ""
		for k := range o.All() {
			if k <= prev {
				t.Fatalf("%s: All() out of order: %q after %q", step, k, prev)
			}
			prev = k
		}
	}
	check("empty")
	for i := 0; i < 200; i++ {
		a, src := attrs[(i*7)%len(attrs)], srcs[(i*5)%len(srcs)]
		switch i % 5 {
		case 4:
			o.Delete(a)
			delete(m, a)
		default:
			o.Set(a, src)
			m[a] = src
		}
		check(fmt.Sprintf("step %d", i))
	}
	c := o.Clone()
	c.Set("port", Source{Line: 99})
	if o.At("port").Line == 99 {
		t.Error("Clone shares its entries with the original")
	}
	o.Keep(func(attr string, src Source) bool { return src.Origin == "" })
	for k, v := range m {
		if v.Origin != "" {
			delete(m, k)
		}
	}
	check("after Keep")
	o.Compact()
	check("after Compact")
}

// TestOriginsJSON: the check mode's JSON (docs/check-json.md) is what
// the map gave, and reads back into an equal value.
func TestOriginsJSON(t *testing.T) {
	m := map[string]Source{
		"port":      {File: "a<b>.conf", Line: 3, Col: 2},
		"instances": {Origin: "defaults", File: "x", Line: 1},
		"cps":       {Origin: "default"},
	}
	type withMap struct {
		Origins map[string]Source `json:"origins,omitempty"`
	}
	type withOrigins struct {
		Origins Origins `json:"origins,omitzero"`
	}
	for _, mm := range []map[string]Source{m, nil} {
		want, err := json.Marshal(withMap{mm})
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(withOrigins{OriginsOf(mm)})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("JSON\n got %s\nwant %s", got, want)
		}
		var back withOrigins
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back.Origins, OriginsOf(mm)) {
			t.Errorf("round trip: %+v, want %+v", back.Origins, OriginsOf(mm))
		}
	}
}

// TestOriginsBounds: a column beyond what an entry holds is kept as the
// largest it can, never wrapped into the attribute or origin bits.
func TestOriginsBounds(t *testing.T) {
	var o Origins
	o.Set("server", Source{File: "f", Line: 7, Col: maxCol + 1000, Origin: "flag"})
	o.Set("user", Source{File: "f", Line: 1 << 40, Col: -3})
	if got := o.At("server"); got.Col != maxCol || got.Origin != "flag" || got.Line != 7 {
		t.Errorf("server: %+v", got)
	}
	if got := o.At("user"); got.Col != 0 || got.Origin != "" || got.Line <= 0 {
		t.Errorf("user: %+v", got)
	}
	if n := unsafe.Sizeof(origin{}); n != 24 {
		t.Errorf("an entry is %d bytes, want 24", n)
	}
}

// TestOriginsConcurrentIntern: services are parsed on several goroutines
// (a reload beside a check); the intern tables are shared.
func TestOriginsConcurrentIntern(t *testing.T) {
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				var o Origins
				a := fmt.Sprintf("concurrent_attr_%d", i%50)
				o.Set(a, Source{Line: i, Origin: "defaults"})
				if got := o.At(a); got.Line != i || got.Origin != "defaults" {
					t.Errorf("%s: %+v", a, got)
					return
				}
			}
		}()
	}
	wg.Wait()
}
