//go:build linux && cgo

package spawn

import "errors"

// sandboxReady is set once the clone child applies Spec.Sandbox; until
// then a sandboxed service is refused, never started less isolated.
const sandboxReady = false

func sandboxBuild() error {
	if !sandboxReady {
		return errors.New("this gxinetd's server child does not apply sandbox attributes yet")
	}
	return nil
}

func reaperFDIfAny() (int, error) { return reaperFD() }
