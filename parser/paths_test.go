package parser

import (
	"path/filepath"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

// Relative banner and log paths are resolved against the directory of the
// file that names them, so they keep working after the daemon's chdir.
func TestRelativeFilePathsFollowTheirFile(t *testing.T) {
	conf := `defaults
{
	log_type    = FILE logs/services.log
	banner_fail = fail.txt
}
service echo
{
	type        = INTERNAL
	id          = echo-stream
	socket_type = stream
	wait        = no
	banner      = /abs/banner
	banner_success = ok.txt
}
`
	cfg := Parse("/etc/gx/xinetd.conf", []byte(conf), testOptions())
	if cfg.Diags.HasErrors() {
		t.Fatalf("unexpected errors:\n%v", cfg.Diags)
	}
	s := cfg.Lookup("echo-stream")
	if s == nil {
		t.Fatal("echo-stream not accepted")
	}
	want := map[string][2]string{
		"banner":         {s.Banner, "/abs/banner"},
		"banner_success": {s.BannerSuccess, filepath.Join("/etc/gx", "ok.txt")},
		"banner_fail":    {s.BannerFail, filepath.Join("/etc/gx", "fail.txt")},
	}
	for attr, v := range want {
		if v[0] != v[1] {
			t.Errorf("%s = %q, want %q", attr, v[0], v[1])
		}
	}
	if s.LogType.Kind != service.LogFile || s.LogType.Path != "/etc/gx/logs/services.log" {
		t.Errorf("log_type = %+v, want FILE /etc/gx/logs/services.log", s.LogType)
	}
}
