package spec

import "strings"

// sku is an Azure VM size: vCPUs and memory in GiB.
type sku struct {
	cpu    float64
	memGiB float64
}

// skus holds the common sizes for online deployments, keyed by lower-case
// name. Sources: Azure's VM size tables (Dv2/DSv2, Fsv2, Esv3, Dasv4, and
// the NC-series used for GPU inference).
var skus = map[string]sku{
	// DSv2 / Dv2.
	"standard_ds1_v2": {1, 3.5}, "standard_ds2_v2": {2, 7}, "standard_ds3_v2": {4, 14},
	"standard_ds4_v2": {8, 28}, "standard_ds5_v2": {16, 56},
	"standard_d1_v2": {1, 3.5}, "standard_d2_v2": {2, 7}, "standard_d3_v2": {4, 14},
	"standard_d4_v2": {8, 28}, "standard_d5_v2": {16, 56},
	"standard_ds11_v2": {2, 14}, "standard_ds12_v2": {4, 28}, "standard_ds13_v2": {8, 56},
	"standard_ds14_v2": {16, 112}, "standard_ds15_v2": {20, 140},
	// Fsv2.
	"standard_f2s_v2": {2, 4}, "standard_f4s_v2": {4, 8}, "standard_f8s_v2": {8, 16},
	"standard_f16s_v2": {16, 32}, "standard_f32s_v2": {32, 64}, "standard_f48s_v2": {48, 96},
	"standard_f64s_v2": {64, 128}, "standard_f72s_v2": {72, 144},
	// Esv3.
	"standard_e2s_v3": {2, 16}, "standard_e4s_v3": {4, 32}, "standard_e8s_v3": {8, 64},
	"standard_e16s_v3": {16, 128}, "standard_e20s_v3": {20, 160}, "standard_e32s_v3": {32, 256},
	"standard_e48s_v3": {48, 384}, "standard_e64s_v3": {64, 432},
	// Dasv4.
	"standard_d2as_v4": {2, 8}, "standard_d4as_v4": {4, 16}, "standard_d8as_v4": {8, 32},
	"standard_d16as_v4": {16, 64}, "standard_d32as_v4": {32, 128}, "standard_d48as_v4": {48, 192},
	"standard_d64as_v4": {64, 256}, "standard_d96as_v4": {96, 384},
	// GPU sizes used for inference.
	"standard_nc4as_t4_v3": {4, 28}, "standard_nc8as_t4_v3": {8, 56}, "standard_nc16as_t4_v3": {16, 110},
	"standard_nc64as_t4_v3": {64, 440}, "standard_nc6s_v3": {6, 112}, "standard_nc12s_v3": {12, 224},
	"standard_nc24s_v3": {24, 448},
}

// InstanceTypeResources returns the vCPUs and memory of an Azure VM size
// such as Standard_DS3_v2 (4 cores, 14 GiB), case-insensitively. ok is
// false for a size plumbline has no entry for (the loader warns).
func InstanceTypeResources(name string) (cpu float64, memoryBytes int64, ok bool) {
	s, ok := skus[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		return 0, 0, false
	}
	return s.cpu, int64(s.memGiB * (1 << 30)), true
}
