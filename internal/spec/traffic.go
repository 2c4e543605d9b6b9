package spec

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// MaxMirrorPercent is the largest mirror_traffic value Azure accepts.
const MaxMirrorPercent = 50

// ParseTraffic parses the CLI's --traffic "blue=90 green=10" and
// --mirror-traffic "green=10": pairs separated by spaces or commas, each
// value an integer from 0 to 100. Names are lower-cased. "" gives an empty
// map. Totals are checked by ValidateTraffic, not here.
func ParseTraffic(s string) (map[string]int, error) {
	out := map[string]int{}
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	var errs Errors
	for _, f := range fields {
		name, val, ok := strings.Cut(f, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		if !ok || name == "" {
			errs = append(errs, Problem{Field: "traffic", Message: fmt.Sprintf("%s: expected deployment=percent, for example blue=90", quote(f))})
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || n < 0 || n > 100 {
			errs = append(errs, Problem{Field: "traffic", Message: fmt.Sprintf("%s: the percentage must be an integer from 0 to 100", quote(f))})
			continue
		}
		if _, dup := out[name]; dup {
			errs = append(errs, Problem{Field: "traffic", Message: fmt.Sprintf("%s: %s is given twice", quote(f), name)})
			continue
		}
		if err := ValidateName("deployment", name); err != nil {
			errs = append(errs, Problem{Field: "traffic", Message: fmt.Sprintf("%s: %v", quote(f), err)})
			continue
		}
		out[name] = n
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// ValidateTraffic checks an endpoint's traffic and mirror_traffic together:
// keys are deployment names; traffic values are 0–100 and total 0 or 100;
// mirror_traffic has at most one key, 0–50, and that deployment has no live
// traffic. Keys are compared case-insensitively.
func ValidateTraffic(traffic, mirror map[string]int) error {
	var p problems
	total := 0
	for _, k := range sortedKeys(traffic) {
		v := traffic[k]
		field := "traffic." + k
		if err := ValidateName("deployment", k); err != nil {
			p.add(field, "%v", err)
		}
		if v < 0 || v > 100 {
			p.add(field, "must be from 0 to 100; got %d", v)
		}
		total += v
	}
	if total != 0 && total != 100 {
		p.add("traffic", "must total 0 or 100; it totals %d: %s", total, FormatTraffic(traffic))
	}
	live := make(map[string]int, len(traffic))
	for k, v := range traffic {
		live[strings.ToLower(k)] += v
	}
	if len(mirror) > 1 {
		p.add("mirror_traffic", "Only one key will be accepted and value needs to be less than or equal to 50%%; got %s", FormatTraffic(mirror))
	}
	for _, k := range sortedKeys(mirror) {
		v := mirror[k]
		field := "mirror_traffic." + k
		if err := ValidateName("deployment", k); err != nil {
			p.add(field, "%v", err)
		}
		if v < 0 || v > MaxMirrorPercent {
			p.add(field, "Only one key will be accepted and value needs to be less than or equal to 50%%; got %d", v)
		}
		if tv := live[strings.ToLower(k)]; tv > 0 && v > 0 {
			p.add(field, "a deployment can receive only live traffic or mirrored traffic, not both; traffic.%s is %d", strings.ToLower(k), tv)
		}
	}
	return p.err()
}

// FormatTraffic writes a traffic map as "blue=60 green=30", sorted by name.
func FormatTraffic(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Itoa(m[k])
	}
	return strings.Join(parts, " ")
}

func itoa(i int) string { return strconv.Itoa(i) }
