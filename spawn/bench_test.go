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
	var cur *testing.B
	inModes(func(name string, g func()) bool {
		return b.Run(name, func(b *testing.B) { cur = b; g() })
	}, func() {
		b := cur
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
