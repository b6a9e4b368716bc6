package access

// Reason says why a request was refused. OK means it was not.
type Reason int

const (
	OK Reason = iota
	ReasonAddress
	ReasonLibwrap
	ReasonTime
	ReasonCPS
	ReasonServiceLimit
	ReasonPerSourceLimit
	ReasonProcessLimit
	ReasonLoad
	// ReasonLooping: the service exceeded its invocations per minute
	// (inetd's `.N`/`/N` rate or FreeBSD -R) and is closed for 10 minutes.
	ReasonLooping
	// ReasonRate: one client exceeded its connections per minute (FreeBSD -C).
	ReasonRate
	ReasonFork
	ReasonDescriptors
	ReasonNoID
	// ReasonProxyUntrusted: a proxy_protocol service's connection came
	// from an address outside proxy_from.
	ReasonProxyUntrusted
	// ReasonProxyTimeout: no complete PROXY header within proxy_timeout.
	ReasonProxyTimeout
	// ReasonProxyMalformed: the connection did not begin with a valid
	// PROXY header of an accepted version (or ended inside one).
	ReasonProxyMalformed
	numReasons
)

// reasonWords are xinetd's FAIL words (§11.2) where xinetd has one.
var reasonWords = [numReasons]string{
	OK:                   "ok",
	ReasonAddress:        "address",
	ReasonLibwrap:        "libwrap",
	ReasonTime:           "time",
	ReasonCPS:            "connections per second",
	ReasonServiceLimit:   "service_limit",
	ReasonPerSourceLimit: "per_source_limit",
	ReasonProcessLimit:   "process_limit",
	ReasonLoad:           "load",
	ReasonLooping:        "looping",
	ReasonRate:           "per_source_rate",
	ReasonFork:           "fork",
	ReasonDescriptors:    "no available descriptors",
	ReasonNoID:           "noid",
	ReasonProxyUntrusted: "proxy_untrusted",
	ReasonProxyTimeout:   "proxy_timeout",
	ReasonProxyMalformed: "proxy_malformed",
}

var reasonCodes = [numReasons]string{
	OK:                   "ok",
	ReasonAddress:        "address",
	ReasonLibwrap:        "libwrap",
	ReasonTime:           "time",
	ReasonCPS:            "cps",
	ReasonServiceLimit:   "service_limit",
	ReasonPerSourceLimit: "per_source_limit",
	ReasonProcessLimit:   "process_limit",
	ReasonLoad:           "load",
	ReasonLooping:        "looping",
	ReasonRate:           "per_source_rate",
	ReasonFork:           "fork",
	ReasonDescriptors:    "descriptors",
	ReasonNoID:           "noid",
	ReasonProxyUntrusted: "proxy_untrusted",
	ReasonProxyTimeout:   "proxy_timeout",
	ReasonProxyMalformed: "proxy_malformed",
}

// String is the word of the FAIL record: xinetd's word where xinetd has
// one, UNKNOWN (as xinetd prints) for values outside the enum.
func (r Reason) String() string {
	if r >= 0 && r < numReasons {
		return reasonWords[r]
	}
	return "UNKNOWN"
}

// Code is a stable snake_case identifier for structured logs and metrics.
func (r Reason) Code() string {
	if r >= 0 && r < numReasons {
		return reasonCodes[r]
	}
	return "unknown"
}

// Reasons lists every refusal reason (OK excluded), in enum order.
func Reasons() []Reason {
	out := make([]Reason, 0, numReasons-1)
	for r := ReasonAddress; r < numReasons; r++ {
		out = append(out, r)
	}
	return out
}
