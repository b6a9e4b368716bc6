//go:build linux && (!cgo || asan || msan || !(amd64 || arm64))

package spawn

import "errors"

// sandboxBuild refuses: without the clone path (no cgo, a sanitizer
// build, another architecture) servers start through Go's fork or
// the exec helper, a multi-threaded Go process that cannot make a mount
// namespace of its own, and the order the sandbox must be applied in
// (namespaces, mounts, chroot, credentials, no_new_privs, seccomp) cannot
// be kept. Refusing is better than running a server less isolated than
// its configuration says.
func sandboxBuild() error {
	return errors.New("this gxinetd was built without its C server child (no cgo, a sanitizer build, or an architecture other than amd64 and arm64), and only that child applies sandbox attributes in their order (namespaces, mounts, chroot, credentials, no_new_privs, seccomp); build it with a C compiler (CGO_ENABLED=1) to serve sandboxed services")
}

func reaperFDIfAny() (int, error) { return -1, nil }
