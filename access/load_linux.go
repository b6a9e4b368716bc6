//go:build linux

package access

import (
	"fmt"
	"syscall"
)

// siLoadShift is SI_LOAD_SHIFT: sysinfo(2) load averages are fixed point.
const siLoadShift = 16

// sysLoad is the 1-minute load average from sysinfo(2), which matches
// /proc/loadavg without reading a file per request. (The stdlib syscall
// package is used rather than x/sys/unix: same call, no extra import.)
func sysLoad() (float64, error) {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return -1, fmt.Errorf("access: sysinfo: %w", err)
	}
	return float64(si.Loads[0]) / (1 << siLoadShift), nil
}
