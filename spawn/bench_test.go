package spawn

import (
	"os"
	"testing"
)

func BenchmarkStartTrue(b *testing.B) {
	truePath, err := findProgram("true")
	if err != nil {
		b.Skip(err)
	}
	null, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	for _, helper := range []bool{false, true} {
		name := "plain"
		if helper {
			name = "helper"
		}
		b.Run(name, func(b *testing.B) {
			old := forceHelper
			forceHelper = helper
			defer func() { forceHelper = old }()
			for b.Loop() {
				p, err := Start(Spec{Path: truePath, Umask: -1}, null)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := p.Wait(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
