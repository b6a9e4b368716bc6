module github.com/gxinetd/gxinetd

go 1.26.0

require (
	github.com/alecthomas/participle/v2 v2.1.4
	golang.org/x/sys v0.49.0
	gopkg.in/natefinch/lumberjack.v2 v2.2.1
)

require github.com/hashicorp/go-sockaddr v1.0.7

require github.com/hashicorp/errwrap v1.1.0 // indirect
