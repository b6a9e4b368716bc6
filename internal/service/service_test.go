package service

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestFlagsRoundTrip(t *testing.T) {
	f := FlagNameInArgs | FlagIPv6 | FlagReuse
	if got := f.String(); got != "REUSE NAMEINARGS IPv6" {
		t.Errorf("String = %q (want xinetd dump order)", got)
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var back Flags
	if err := json.Unmarshal(b, &back); err != nil || back != f {
		t.Errorf("round trip %s -> %v, %v", b, back, err)
	}
	if _, ok := ParseFlag("nameinargs"); !ok {
		t.Errorf("flags are case-insensitive")
	}
	if _, ok := ParseFlag("DISABLE"); ok {
		t.Errorf("DISABLE is not a flag in xinetd 2.3.15")
	}
}

func TestTimeRangeWraps(t *testing.T) {
	night := TimeRange{Start: 22 * 60, End: 6 * 60}
	for m, want := range map[int]bool{23 * 60: true, 0: true, 6 * 60: true, 6*60 + 1: false, 12 * 60: false} {
		if got := night.Contains(m); got != want {
			t.Errorf("22:00-06:00 contains %d = %v", m, got)
		}
	}
	day := TimeRange{Start: 9 * 60, End: 17 * 60}
	if !day.Contains(17*60) || day.Contains(17*60+1) || day.String() != "09:00-17:00" {
		t.Errorf("inclusive bounds broken: %v", day)
	}
}

func TestLimit(t *testing.T) {
	if !Limit(Unlimited).Allows(1 << 30) {
		t.Error("unlimited must allow")
	}
	if Limit(0).Allows(0) {
		t.Error("0 refuses everything")
	}
	if !Limit(2).Allows(1) || Limit(2).Allows(2) {
		t.Error("limit 2")
	}
}

func TestDiagString(t *testing.T) {
	d := Diag{Pos: Source{File: "/etc/xinetd.d/echo", Line: 3, Col: 9}, Severity: SevError, Code: "E-ATTR-VALUE",
		Service: "echo", Attr: "only_from", Msg: `invalid address "10.0.0.0/33"`,
		IncludedFrom: []Source{{File: "/etc/xinetd.conf", Line: 12}}}
	want := `/etc/xinetd.d/echo:3:9: error E-ATTR-VALUE: service echo: only_from: invalid address "10.0.0.0/33" (included from /etc/xinetd.conf:12)`
	if d.String() != want {
		t.Errorf("got  %s\nwant %s", d, want)
	}
	ds := Diags{d, {Severity: SevWarning}}
	if !ds.HasErrors() || len(ds.Errors()) != 1 || ds.HasFatal() {
		t.Error("Diags helpers")
	}
}

func TestConfigJSONRoundTrip(t *testing.T) {
	yes := true
	cfg := &Config{Main: "x.conf", Services: []*Service{{Name: "echo", ID: "echo-stream", Status: StatusAccepted,
		Type: TypeInternal, Flags: FlagIPv4, SocketType: SockStream, LogOnSuccess: LogSuccessHost | LogSuccessPID,
		V6Only: &yes, Instances: Unlimited, AccessTimes: []TimeRange{{1, 2}}}}}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Services[0], back.Services[0]) {
		t.Errorf("round trip differs:\n%+v\n%+v", cfg.Services[0], back.Services[0])
	}
	if cfg.Lookup("ECHO-STREAM") == nil {
		t.Error("ids are compared case-insensitively")
	}
}

func TestHasBuiltin(t *testing.T) {
	if !HasBuiltin("Echo", SockDgram) || HasBuiltin("tcpmux", SockDgram) || HasBuiltin("servers", SockStream) {
		t.Error("builtin table")
	}
}
