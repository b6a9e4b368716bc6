package service

import "strings"

// ProxyVersions is the proxy_protocol attribute: the set of PROXY
// protocol header versions a service's connections must begin with.
// The bit values are those of internal/proxyproto's Versions.
type ProxyVersions uint8

const (
	ProxyV1 ProxyVersions = 1 << iota
	ProxyV2
)

// String is the attribute's value as written: "v1", "v2" or "v1 v2".
func (v ProxyVersions) String() string {
	var parts []string
	if v&ProxyV1 != 0 {
		parts = append(parts, "v1")
	}
	if v&ProxyV2 != 0 {
		parts = append(parts, "v2")
	}
	return strings.Join(parts, " ")
}

func (v ProxyVersions) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

func (v *ProxyVersions) UnmarshalText(b []byte) error {
	*v = 0
	for _, w := range strings.Fields(string(b)) {
		switch strings.ToLower(w) {
		case "v1":
			*v |= ProxyV1
		case "v2":
			*v |= ProxyV2
		}
	}
	return nil
}

// DefaultProxyTimeout is how long, in seconds, a connection of a
// proxy_protocol service may take to send its header when proxy_timeout
// is not set (the specification asks for at least 3 s, to cover a TCP
// retransmission).
const DefaultProxyTimeout = 3
