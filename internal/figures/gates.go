package figures

import (
	"fmt"
	"math"
)

// Gates are a rollout step's conditions. A zero MaxLatencyRatio or
// MinAgreement turns that gate off; the rates are shares (0.01 is 1 %).
type Gates struct {
	MaxErrorRate             float64 `json:"max_error_rate"`
	MaxLatencyRatio          float64 `json:"max_latency_ratio"`
	MinAgreement             float64 `json:"min_agreement"`
	MaxContractViolationRate float64 `json:"max_contract_violation_rate"`
}

// LatencyQuantile is the quantile the latency gate compares.
const LatencyQuantile = 0.99

// Live judges a live step: the candidate's figures against the other
// deployments' (baseline) over the same requests' time. The latency gate
// compares the candidate's p99 with the baseline's, or with reference (a
// p99 in seconds kept from an earlier step) when the baseline answered
// fewer than minBaseline requests; with neither it is not judged. It
// returns the first breach ("" when none), with the figures.
func (g Gates) Live(cand, base *Deployment, reference float64, minBaseline int64) string {
	if cand.Requests == 0 {
		return ""
	}
	if r := cand.ErrorRate(); r > g.MaxErrorRate {
		return fmt.Sprintf("error rate %s (%d of %d requests) > max %s", pct(r), cand.Errors, cand.Requests, pct(g.MaxErrorRate))
	}
	if r := cand.ContractViolationRate(); r > g.MaxContractViolationRate {
		return fmt.Sprintf("contract violation rate %s (%d of %d requests) > max %s", pct(r), cand.ContractViolations, cand.Requests, pct(g.MaxContractViolationRate))
	}
	if g.MaxLatencyRatio > 0 {
		ref := reference
		if base != nil && base.Requests >= max(1, minBaseline) {
			ref = base.Latency.Quantile(LatencyQuantile)
		}
		if ref > 0 {
			p99 := cand.Latency.Quantile(LatencyQuantile)
			if ratio := p99 / ref; ratio > g.MaxLatencyRatio {
				return fmt.Sprintf("p99 latency %s is %.2f× the live deployments' %s > max %.2f×", ms(p99), ratio, ms(ref), g.MaxLatencyRatio)
			}
		}
	}
	return ""
}

// Shadow judges a shadow step from the comparison of the candidate's
// answers with the live ones.
func (g Gates) Shadow(p *Pair) string {
	if p.ShadowRequests == 0 {
		return ""
	}
	if r := p.ShadowErrorRate(); r > g.MaxErrorRate {
		return fmt.Sprintf("shadow error rate %s (%d of %d mirrored requests) > max %s", pct(r), p.ShadowErrors, p.ShadowRequests, pct(g.MaxErrorRate))
	}
	if total := p.ShadowRequests + p.ShadowContractViolations; total > 0 {
		if r := ratio(p.ShadowContractViolations, total); r > g.MaxContractViolationRate {
			return fmt.Sprintf("contract violation rate %s (%d of %d mirrored requests) > max %s", pct(r), p.ShadowContractViolations, total, pct(g.MaxContractViolationRate))
		}
	}
	if g.MinAgreement > 0 && p.Predictions > 0 {
		if a := p.Agreement(); a < g.MinAgreement {
			return fmt.Sprintf("agreement %s (%d of %d predictions) < min %s", pct(a), p.Agreed, p.Predictions, pct(g.MinAgreement))
		}
	}
	if g.MaxLatencyRatio > 0 && p.LiveLatency.Count() > 0 {
		live, shadow := p.LiveLatency.Quantile(LatencyQuantile), p.ShadowLatency.Quantile(LatencyQuantile)
		if live > 0 {
			if r := shadow / live; r > g.MaxLatencyRatio {
				return fmt.Sprintf("shadow p99 latency %s is %.2f× the live %s > max %.2f×", ms(shadow), r, ms(live), g.MaxLatencyRatio)
			}
		}
	}
	return ""
}

// pct formats a share as a percentage: 0.0123 → "1.23 %".
func pct(v float64) string {
	s := fmt.Sprintf("%.2f", v*100)
	for len(s) > 1 && s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	s = trimDot(s)
	return s + " %"
}

func trimDot(s string) string {
	if len(s) > 0 && s[len(s)-1] == '.' {
		return s[:len(s)-1]
	}
	return s
}

// ms formats seconds as milliseconds.
func ms(sec float64) string {
	v := sec * 1000
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", math.Round(v))
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}
