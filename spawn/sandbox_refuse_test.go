package spawn

import (
	"errors"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

// TestSandboxNeverWeaker: a Spec with a sandbox is refused by every start
// path that cannot apply it (the exec helper, Go's fork, a build without
// the clone child), never started without it; and a build without the
// clone child refuses sandbox attributes already when the template is
// made (what the daemon's load and the check mode see).
func TestSandboxNeverWeaker(t *testing.T) {
	defer func(h, c bool) { forceHelper, noClone = h, c }(forceHelper, noClone)
	for _, mode := range []struct {
		name          string
		helper, clone bool
	}{{"helper", true, false}, {"fork", false, true}} {
		forceHelper, noClone = mode.helper, mode.clone
		spec := serverSpec(t, "echo-stdin")
		spec.Sandbox = &Sandbox{NoNewPrivs: true}
		srv, c := socketPair(t)
		p, err := Start(spec, srv)
		srv.Close()
		c.Close()
		var se *StartError
		if err == nil {
			p.Kill()
			p.Wait()
			t.Errorf("%s: a sandboxed spec started", mode.name)
		} else if !errors.As(err, &se) || se.Step != "sandbox" {
			t.Errorf("%s: %v, want the sandbox step refused", mode.name, err)
		}
	}
	forceHelper, noClone = false, false
	_, err := buildSandbox(&service.Sandbox{NoNewPrivs: true}, currentHost())
	if haveClone && err != nil {
		t.Errorf("the clone build refuses a sandbox: %v", err)
	}
	if !haveClone && err == nil {
		t.Error("a build without the clone child accepts a sandbox")
	}
}
