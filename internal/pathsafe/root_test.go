package pathsafe

import (
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
)

// TestCheckExecIn: a server run chrooted is judged inside its root. An
// absolute link inside the root means a path inside it (not the host's),
// the root itself must be safe, and an unsafe directory or link inside the
// root is found exactly as it would be outside.
func TestCheckExecIn(t *testing.T) {
	needRoot(t)
	base := newBase(t)
	build(t, base, []node{
		{path: "jail", kind: 'd'},
		{path: "jail/opt/chal/run", kind: 'f', mode: 0o755},
		{path: "jail/bin/chal", kind: 'l', target: "/opt/chal/run"},
		{path: "jail/bin/up", kind: 'l', target: "../../../../../../opt/chal/run"},
		{path: "jail/open", kind: 'd', mode: 0o777},
		{path: "jail/open/run", kind: 'f', mode: 0o755},
		{path: "jail/bin/viaopen", kind: 'l', target: "/open/run"},
		{path: "badjail", kind: 'd', mode: 0o777},
		{path: "badjail/run", kind: 'f', mode: 0o755},
	})
	jail := filepath.Join(base, "jail")
	for _, p := range []string{"/bin/chal", "/bin/up", "/opt/chal/run"} {
		info, err := CheckExecIn(jail, p, Trust{})
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if info.Real != filepath.Join(jail, "opt/chal/run") {
			t.Errorf("%s: reached %s", p, info.Real)
		}
	}
	// The host has no /opt/chal/run: outside the root the link is broken.
	if _, err := CheckExec(filepath.Join(jail, "bin/chal"), Trust{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("walked on the host, the absolute link must miss: %v", err)
	}
	var pe *Error
	if _, err := CheckExecIn(jail, "/bin/viaopen", Trust{}); !errors.As(err, &pe) || pe.Problem != WorldWritable || pe.At != filepath.Join(jail, "open") {
		t.Errorf("a link into a world-writable directory of the root: %v", err)
	}
	if _, err := CheckExecIn(filepath.Join(base, "badjail"), "/run", Trust{}); !errors.As(err, &pe) || pe.At != filepath.Join(base, "badjail") {
		t.Errorf("a world-writable root: %v", err)
	}
}
