// Package testnet hands tests the host-wide resources they share with
// every other process on the machine: TCP/UDP ports and named resources
// (a well-known port on one loopback address, a network namespace name,
// the host's rpcbind).
//
// CI runs on a host that other work shares, and two `make test` runs may
// go on side by side. A port the kernel handed out with bind(":0") and
// that the test then closed is from the range the kernel uses for every
// outgoing connection, so another process can take it before the daemon
// under test binds it. The ports given here come from outside
// /proc/sys/net/ipv4/ip_local_port_range, so the kernel never hands them
// to anyone, and each is held under a lock file that every test process
// on the host honours until the test ends.
//
// Only tests import this package.
package testnet
