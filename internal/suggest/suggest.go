package suggest

import "strings"

// Closest returns the name of known nearest to word (case aside) when it
// is within two edits, else "". On a tie the first in known wins, so a
// caller's order decides.
func Closest(word string, known []string) string {
	w := strings.ToLower(word)
	best, bestD := "", 3
	for _, k := range known {
		if d := Distance(w, strings.ToLower(k), bestD); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// Distance is the Levenshtein distance between a and b, giving up (and
// returning limit) once it cannot be below limit: the names compared are
// short and most are far apart, so the common case stops early.
func Distance(a, b string, limit int) int {
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
