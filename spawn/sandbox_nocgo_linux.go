//go:build linux && !cgo

package spawn

import "errors"

// sandboxBuild refuses: without cgo servers start through Go's fork or
// the exec helper, a multi-threaded Go process that cannot make a mount
// namespace of its own, and the order the sandbox must be applied in
// (namespaces, mounts, chroot, credentials, no_new_privs, seccomp) cannot
// be kept. Refusing is better than running a server less isolated than
// its configuration says.
func sandboxBuild() error {
	return errors.New("this gxinetd was built without cgo, and only the cgo build's server child applies sandbox attributes in their order (namespaces, mounts, chroot, credentials, no_new_privs, seccomp); build it with a C compiler (CGO_ENABLED=1) to serve sandboxed services")
}

func reaperFDIfAny() (int, error) { return -1, nil }
