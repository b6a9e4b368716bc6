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
	for _, m := range []struct {
		name            string
		helper, noClone bool
	}{{"clone", false, false}, {"plain", false, true}, {"helper", true, true}} {
		if m.name == "clone" && !haveClone {
			continue
		}
		b.Run(m.name, func(b *testing.B) {
			oldH, oldC := forceHelper, noClone
			forceHelper, noClone = m.helper, m.noClone
			defer func() { forceHelper, noClone = oldH, oldC }()
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
