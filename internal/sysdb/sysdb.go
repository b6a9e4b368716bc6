// Package sysdb reads the system databases a super-server consults while
// reading its configuration: /etc/services, /etc/protocols, /etc/rpc,
// /etc/networks, and users and groups.
//
// It is a leaf package (it imports nothing from gxinetd). Each file is
// read once per DB, on the first lookup that needs it, and cached, so a 10,000-service configuration does not read
// /etc/services 10,000 times; a reload makes a new DB. Root lets tests and
// the check mode point every lookup at a directory of their own.
//
// Users and groups of the real system (Root "" or "/") are resolved
// through the C library's name service switch when the build has cgo
// (NSS), so accounts from LDAP, SSSD or extrausers are known as they are
// to login(1); answers, "no such user" included, are kept until Refresh.
// With a Root, and in a build without cgo, /etc/passwd and /etc/group are
// read as files.
package sysdb

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// User is one /etc/passwd entry.
type User struct {
	Name string
	UID  int
	GID  int
	Home string
}

// Group is one /etc/group entry.
type Group struct {
	Name    string
	GID     int
	Members []string
}

// DB answers lookups from the files under Root ("" or "/" for the real
// system). The zero value reads the real system. Each file is read on
// the first lookup that needs it and kept until Refresh. It is safe for concurrent use.
type DB struct {
	Root string

	t atomic.Pointer[tables]
}

// tables is one reading of the databases. Each file is read on the
// first lookup that needs it, not all of them at the first lookup: a
// start-up that only asks for a protocol (every service with
// `protocol = tcp`) and users from NSS read /etc/services, rpc,
// networks, passwd and group for nothing, about half a millisecond of
// every start.
type tables struct {
	svcOnce   sync.Once
	services  map[string]int // "name/proto" -> port (names and aliases)
	ports     map[string]string
	protoOnce sync.Once
	protocols map[string]int // name or alias -> number
	rpcOnce   sync.Once
	rpc       map[string]int
	netOnce   sync.Once
	networks  map[string]string
	pwOnce    sync.Once
	users     map[string]*User
	uids      map[int]*User
	grOnce    sync.Once
	groups    map[string]*Group
	gids      map[int]*Group

	nss nssCache
}

// nssCache keeps NSS answers for the life of one reading; a nil entry is
// a cached "no such entry". Lookups that failed otherwise (a directory
// server that did not answer) are not kept.
type nssCache struct {
	mu       sync.Mutex
	users    map[string]*User
	uids     map[int]*User
	groups   map[string]*Group
	gids     map[int]*Group
	groupIDs map[string][]int // "name:primary"
}

// System is the DB of the running system.
var System = &DB{}

// Refresh forgets what was read, so the next lookup reads the files
// again (a reload picks up new users, groups and services).
func (db *DB) Refresh() { db.t.Store(nil) }

func (db *DB) path(name string) string {
	if db.Root == "" || db.Root == "/" {
		return "/etc/" + name
	}
	return filepath.Join(db.Root, "etc", name)
}

// load returns the current reading, starting an empty one (its files
// are read on first need) after a Refresh or on first use.
func (db *DB) load() *tables {
	for {
		if t := db.t.Load(); t != nil {
			return t
		}
		if t := (&tables{}); db.t.CompareAndSwap(nil, t) {
			return t
		}
	}
}

// svc is the reading of /etc/services.
func (db *DB) svc() *tables {
	t := db.load()
	t.svcOnce.Do(func() {
		t.services = map[string]int{}
		t.ports = map[string]string{}
		eachLine(db.path("services"), func(f []string) {
			// name port/proto aliases...
			if len(f) < 2 {
				return
			}
			pp := strings.SplitN(f[1], "/", 2)
			if len(pp) != 2 {
				return
			}
			port, err := strconv.Atoi(pp[0])
			if err != nil || port < 0 || port > 65535 {
				return
			}
			proto := strings.ToLower(pp[1])
			for i, n := range append([]string{f[0]}, f[2:]...) {
				k := n + "/" + proto
				if _, dup := t.services[k]; !dup {
					t.services[k] = port
				}
				if i == 0 {
					pk := pp[0] + "/" + proto
					if _, dup := t.ports[pk]; !dup {
						t.ports[pk] = n
					}
				}
			}
		})
	})
	return t
}

// proto is the reading of /etc/protocols.
func (db *DB) proto() *tables {
	t := db.load()
	t.protoOnce.Do(func() {
		t.protocols = map[string]int{}
		eachNumbered(db.path("protocols"), func(name string, n int) {
			if _, dup := t.protocols[strings.ToLower(name)]; !dup {
				t.protocols[strings.ToLower(name)] = n
			}
		})
		// A machine without /etc/protocols (minimal containers) still
		// knows tcp and udp: the kernel does, whatever the file says.
		for name, n := range map[string]int{"ip": 0, "icmp": 1, "tcp": 6, "udp": 17, "ipv6": 41, "icmpv6": 58} {
			if _, ok := t.protocols[name]; !ok {
				t.protocols[name] = n
			}
		}
	})
	return t
}

// rpcs is the reading of /etc/rpc.
func (db *DB) rpcs() *tables {
	t := db.load()
	t.rpcOnce.Do(func() {
		t.rpc = map[string]int{}
		eachNumbered(db.path("rpc"), func(name string, n int) { t.rpc[name] = n })
	})
	return t
}

// nets is the reading of /etc/networks.
func (db *DB) nets() *tables {
	t := db.load()
	t.netOnce.Do(func() {
		t.networks = map[string]string{}
		eachLine(db.path("networks"), func(f []string) {
			if len(f) < 2 {
				return
			}
			for _, name := range append([]string{f[0]}, f[2:]...) {
				t.networks[name] = f[1]
			}
		})
	})
	return t
}

// passwd is the reading of /etc/passwd as a file (NSS answers are in
// t.nss); the file is only read when they are not enough.
func (t *tables) passwd(db *DB) *tables {
	t.pwOnce.Do(func() {
		t.users = map[string]*User{}
		t.uids = map[int]*User{}
		eachColon(db.path("passwd"), func(f []string) {
			if len(f) < 6 {
				return
			}
			uid, err1 := strconv.Atoi(f[2])
			gid, err2 := strconv.Atoi(f[3])
			if err1 != nil || err2 != nil {
				return
			}
			u := &User{Name: f[0], UID: uid, GID: gid, Home: f[5]}
			if _, dup := t.users[u.Name]; !dup {
				t.users[u.Name] = u
			}
			if _, dup := t.uids[uid]; !dup {
				t.uids[uid] = u
			}
		})
	})
	return t
}

// group is the reading of /etc/group as a file.
func (t *tables) group(db *DB) *tables {
	t.grOnce.Do(func() {
		t.groups = map[string]*Group{}
		t.gids = map[int]*Group{}
		eachColon(db.path("group"), func(f []string) {
			if len(f) < 3 {
				return
			}
			gid, err := strconv.Atoi(f[2])
			if err != nil {
				return
			}
			g := &Group{Name: f[0], GID: gid}
			if len(f) > 3 && f[3] != "" {
				g.Members = strings.Split(f[3], ",")
			}
			if _, dup := t.groups[g.Name]; !dup {
				t.groups[g.Name] = g
			}
			if _, dup := t.gids[gid]; !dup {
				t.gids[gid] = g
			}
		})
	})
	return t
}

// eachLine calls fn with the blank-separated fields of every line of a
// file in services(5) style, comments removed. A missing file is empty.
func eachLine(path string, fn func([]string)) {
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) > 0 {
			fn(f)
		}
	}
}

// eachNumbered calls fn with the name and every alias of each line of
// a file of "name number aliases..." lines (protocols(5), rpc(5)),
// skipping lines whose number is not one.
func eachNumbered(path string, fn func(name string, n int)) {
	eachLine(path, func(f []string) {
		if len(f) < 2 {
			return
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			return
		}
		fn(f[0], n)
		for _, alias := range f[2:] {
			fn(alias, n)
		}
	})
}

// eachColon calls fn with the colon-separated fields of every line of a
// passwd(5)-style file.
func eachColon(path string, fn func([]string)) {
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fn(strings.Split(line, ":"))
	}
}

// ServicePort returns the port of name/proto from /etc/services.
func (db *DB) ServicePort(name, proto string) (int, bool) {
	t := db.svc()
	p, ok := t.services[name+"/"+strings.ToLower(proto)]
	return p, ok
}

// ServiceName returns the official name of port/proto from /etc/services.
func (db *DB) ServiceName(port int, proto string) (string, bool) {
	t := db.svc()
	n, ok := t.ports[strconv.Itoa(port)+"/"+strings.ToLower(proto)]
	return n, ok
}

// Protocol returns the number of a protocol name (case-insensitive).
func (db *DB) Protocol(name string) (int, bool) {
	t := db.proto()
	n, ok := t.protocols[strings.ToLower(name)]
	return n, ok
}

// RPC returns the program number of an RPC service name from /etc/rpc.
func (db *DB) RPC(name string) (int, bool) {
	t := db.rpcs()
	n, ok := t.rpc[name]
	return n, ok
}

// Network returns the network number text of an /etc/networks name.
func (db *DB) Network(name string) (string, bool) {
	t := db.nets()
	n, ok := t.networks[name]
	return n, ok
}

// system reports whether users and groups come from NSS.
func (db *DB) system() bool { return NSS && (db.Root == "" || db.Root == "/") }

// cached looks key up in m, asking fn on a miss; see nssCache.
func cached[K comparable, V any](mu *sync.Mutex, m *map[K]V, key K, fn func() (V, error)) (V, bool, error) {
	mu.Lock()
	if v, ok := (*m)[key]; ok {
		mu.Unlock()
		return v, true, nil
	}
	mu.Unlock()
	// Asked without the lock: a slow directory server must not hold up
	// lookups of other names.
	v, err := fn()
	if err != nil && err != errNotFound {
		return v, false, err
	}
	mu.Lock()
	if *m == nil {
		*m = map[K]V{}
	}
	(*m)[key] = v
	mu.Unlock()
	return v, true, nil
}

// LookupUser finds a user by name.
func (db *DB) LookupUser(name string) (*User, bool) {
	t := db.load()
	if db.system() {
		if u, ok, _ := cached(&t.nss.mu, &t.nss.users, name, func() (*User, error) { return nssUser(name) }); ok {
			return u, u != nil
		}
	}
	u, ok := t.passwd(db).users[name]
	return u, ok
}

// LookupUID finds a user by uid.
func (db *DB) LookupUID(uid int) (*User, bool) {
	t := db.load()
	if db.system() {
		if u, ok, _ := cached(&t.nss.mu, &t.nss.uids, uid, func() (*User, error) { return nssUID(uid) }); ok {
			return u, u != nil
		}
	}
	u, ok := t.passwd(db).uids[uid]
	return u, ok
}

// LookupGroup finds a group by name.
func (db *DB) LookupGroup(name string) (*Group, bool) {
	t := db.load()
	if db.system() {
		if g, ok, _ := cached(&t.nss.mu, &t.nss.groups, name, func() (*Group, error) { return nssGroup(name) }); ok {
			return g, g != nil
		}
	}
	g, ok := t.group(db).groups[name]
	return g, ok
}

// LookupGID finds a group by gid.
func (db *DB) LookupGID(gid int) (*Group, bool) {
	t := db.load()
	if db.system() {
		if g, ok, _ := cached(&t.nss.mu, &t.nss.gids, gid, func() (*Group, error) { return nssGID(gid) }); ok {
			return g, g != nil
		}
	}
	g, ok := t.group(db).gids[gid]
	return g, ok
}

// GroupIDs returns the supplementary group ids of a user as initgroups(3)
// computes them: the given primary gid plus every group that lists the
// user as a member (getgrouplist(3) through NSS), without duplicates,
// primary first, the rest in ascending order.
func (db *DB) GroupIDs(user string, primary int) []int {
	t := db.load()
	var found []int
	if db.system() {
		key := user + ":" + strconv.Itoa(primary)
		ids, ok, _ := cached(&t.nss.mu, &t.nss.groupIDs, key, func() ([]int, error) { return nssGroupIDs(user, primary) })
		if ok {
			found = ids
		}
	}
	if found == nil {
		for _, g := range t.group(db).gids {
			for _, m := range g.Members {
				if m == user {
					found = append(found, g.GID)
				}
			}
		}
	}
	out := []int{primary}
	seen := map[int]bool{primary: true}
	for _, g := range found {
		if !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	// Deterministic order after the primary group.
	rest := out[1:]
	for i := 1; i < len(rest); i++ {
		for j := i; j > 0 && rest[j] < rest[j-1]; j-- {
			rest[j], rest[j-1] = rest[j-1], rest[j]
		}
	}
	return out
}

// UID returns the uid of a user name.
func (db *DB) UID(name string) (int, bool) {
	u, ok := db.LookupUser(name)
	if !ok {
		return 0, false
	}
	return u.UID, true
}

// GID returns the gid of a group name.
func (db *DB) GID(name string) (int, bool) {
	g, ok := db.LookupGroup(name)
	if !ok {
		return 0, false
	}
	return g.GID, true
}
