package parser

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

// checkRoundTrip asserts that the JSON form of a Config (the check mode's
// output) decodes to an identical value.
func checkRoundTrip(t testing.TB, cfg *service.Config) {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var back service.Config
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("unmarshal: %v\n%s", err, b)
	}
	if !reflect.DeepEqual(cfg, &back) {
		b2, _ := json.Marshal(&back)
		t.Fatalf("JSON round trip differs:\n%s\n%s", b, b2)
	}
}
