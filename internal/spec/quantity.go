package spec

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

var quantityRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([-+]?[0-9]+))?([a-zA-Z]*)$`)

// ParseCPU reads a Kubernetes CPU quantity ("0.5", "2", "100m") as cores.
func ParseCPU(s string) (float64, error) {
	num, suffix, err := splitQuantity(s, "cpu")
	if err != nil {
		return 0, err
	}
	switch suffix {
	case "":
		return num, nil
	case "m":
		return num / 1000, nil
	}
	return 0, fmt.Errorf("cpu %s: use cores (0.5, 2) or millicores (500m)", quote(s))
}

var memorySuffixes = map[string]float64{
	"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
	"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60,
}

// ParseMemory reads a Kubernetes memory quantity ("200Mi", "0.1Gi", "1G",
// "134217728") as bytes.
func ParseMemory(s string) (int64, error) {
	num, suffix, err := splitQuantity(s, "memory")
	if err != nil {
		return 0, err
	}
	mult, ok := memorySuffixes[suffix]
	if !ok {
		return 0, fmt.Errorf("memory %s: use bytes or a suffix Ki, Mi, Gi, Ti (or k, M, G, T)", quote(s))
	}
	v := num * mult
	if v > math.MaxInt64/2 {
		return 0, fmt.Errorf("memory %s is too large", quote(s))
	}
	return int64(math.Ceil(v)), nil
}

// ParseGPU reads a whole number of GPUs.
func ParseGPU(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("nvidia.com/gpu %s: expected a whole number of GPUs", quote(s))
	}
	return n, nil
}

func splitQuantity(s, what string) (float64, string, error) {
	m := quantityRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, "", fmt.Errorf("%s %s is not a quantity (for example %s)", what, quote(s), map[string]string{"cpu": "0.5 or 500m", "memory": "512Mi or 1Gi"}[what])
	}
	num, err := strconv.ParseFloat(m[1], 64)
	if err == nil && m[2] != "" {
		var exp int
		exp, err = strconv.Atoi(m[2])
		if err == nil && (exp > 30 || exp < -30) {
			err = fmt.Errorf("exponent out of range")
		}
		num *= math.Pow(10, float64(exp))
	}
	if err != nil || math.IsInf(num, 0) || math.IsNaN(num) {
		return 0, "", fmt.Errorf("%s %s is not a quantity", what, quote(s))
	}
	return num, m[3], nil
}
