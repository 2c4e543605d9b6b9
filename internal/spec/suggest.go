package spec

import (
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// nearest returns the candidate closest to s (by edit distance, ignoring
// case and camelCase-vs-snake_case differences), or "" when none is close
// enough to be a likely typo.
func nearest(s string, candidates []string) string {
	if s == "" {
		return ""
	}
	norm := snakeCase(s)
	best, bestD := "", -1
	for _, c := range candidates {
		d := levenshtein(norm, strings.ToLower(c))
		if bestD < 0 || d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	limit := 2
	if l := len([]rune(norm)) / 4; l > limit {
		limit = l
	}
	if bestD >= 0 && bestD <= limit && bestD < len([]rune(norm)) {
		return best
	}
	// A prefix is a likely short form ("mlflow" for "mlflow_model").
	if len(norm) >= 3 {
		for _, c := range candidates {
			if strings.HasPrefix(strings.ToLower(c), norm) {
				return c
			}
		}
	}
	return ""
}

// levenshtein is the edit distance between a and b, in runes.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 256 || len(rb) > 256 {
		// Names this long are not typos of a field name.
		return len(ra) + len(rb)
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// snakeCase turns "AMLToken", "SystemAssigned", "Key" and "aml_token" into
// "aml_token", "system_assigned", "key" and "aml_token": the SDK's
// case transform for enum values.
func snakeCase(s string) string {
	rs := []rune(strings.TrimSpace(s))
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) {
			if i > 0 && rs[i-1] != '_' && rs[i-1] != '-' {
				prevLowerOrDigit := unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1])
				nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1])
				if prevLowerOrDigit || nextLower {
					b.WriteByte('_')
				}
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		if r == '-' || r == ' ' {
			r = '_'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// oneOf checks an enum value (after the SDK's snake_case transform) and
// returns "" or a message naming the allowed values and the nearest one.
func oneOf(value string, allowed ...string) string {
	v := snakeCase(value)
	for _, a := range allowed {
		if v == a {
			return ""
		}
	}
	msg := "must be one of " + strings.Join(allowed, ", ") + "; got " + quote(value)
	if n := nearest(value, allowed); n != "" {
		msg += "; did you mean " + n + "?"
	}
	return msg
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// quote quotes s for a message, shortening very long values.
func quote(s string) string {
	r := []rune(s)
	if len(r) > 120 {
		s = string(r[:117]) + "..."
	}
	return strconv.Quote(s)
}
