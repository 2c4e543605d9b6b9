package autoscale

import "cmp"

// Reversals counts the changes of direction of an instance count over
// time: up then down (or down then up) is one; up, down, up is two. A
// count that follows a load out and back has one; more is flapping. The
// tests and the benchmark judge the autoscaler's behaviour by it.
func Reversals(counts []int) int {
	n, dir := 0, 0
	for i := 1; i < len(counts); i++ {
		d := cmp.Compare(counts[i], counts[i-1])
		if d != 0 && dir != 0 && d != dir {
			n++
		}
		if d != 0 {
			dir = d
		}
	}
	return n
}
