//go:build !linux

package access

import "errors"

// sysLoad has no portable source outside Linux; an error means max_load
// never refuses, as xinetd does when the load cannot be read.
func sysLoad() (float64, error) {
	return -1, errors.New("access: load average not available on this system")
}
