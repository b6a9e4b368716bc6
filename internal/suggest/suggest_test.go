package suggest

import "testing"

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b  string
		limit int
		want  int
	}{
		{"", "", 3, 0},
		{"ptrace", "ptrace", 3, 0},
		{"ptrase", "ptrace", 3, 1},
		{"ptrac", "ptrace", 3, 1},
		{"pptrace", "ptrace", 3, 1},
		{"kexec", "kexec_load", 3, 3}, // five apart: given up at the limit
		{"abc", "xyz", 3, 3},
		{"abc", "xyz", 9, 3},
		{"sitting", "kitten", 9, 3},
	} {
		if got := Distance(tc.a, tc.b, tc.limit); got != tc.want {
			t.Errorf("Distance(%q, %q, %d) = %d, want %d", tc.a, tc.b, tc.limit, got, tc.want)
		}
	}
}

func TestClosest(t *testing.T) {
	known := []string{"only_from", "no_access", "per_source", "Server"}
	for _, tc := range []struct{ word, want string }{
		{"only_form", "only_from"},
		{"ONLY_FROM", "only_from"},
		{"server", "Server"},
		{"per_sorce", "per_source"},
		{"instances", ""},
		{"", ""},
	} {
		if got := Closest(tc.word, known); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
}
