module github.com/gxinetd/gxinetd

go 1.24

require (
	github.com/alecthomas/participle/v2 v2.1.4 // indirect
	github.com/hashicorp/go-sockaddr v1.0.7 // indirect
	golang.org/x/sys v0.49.0 // indirect
	gopkg.in/natefinch/lumberjack.v2 v2.2.1 // indirect
)
