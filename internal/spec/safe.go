package spec

import (
	"net/url"
	"strings"

	"github.com/theory/jsonpath"
)

// Safe rollout settings: plumbline's extension blocks for the shadow
// comparison (endpoint plumbline.compare), request/response capture
// (deployment plumbline.capture) and progressive rollout (deployment
// plumbline.rollout). Defaults are applied by their users (the rollout
// plan, the capture writer), so a document keeps what the user wrote.

// CompareSettings is an endpoint's plumbline.compare: how the answers of a
// live deployment and of its shadow (the mirror target) are compared.
type CompareSettings struct {
	// Path is a JSONPath (RFC 9535) selecting the predictions in an answer:
	// an array it selects is a list of predictions compared element by
	// element; several nodes it selects are compared in order. "" means the
	// whole answer ($).
	Path string `json:"path,omitempty"`
	// Tolerance is the absolute difference under which two numbers agree,
	// ≥ 0; nil means 1e-9.
	Tolerance *float64 `json:"tolerance,omitempty"`
	// RelativeTolerance also lets two numbers agree when their difference
	// is at most this share of the larger one, ≥ 0; nil means 0 (the
	// absolute tolerance alone).
	RelativeTolerance *float64 `json:"relative_tolerance,omitempty"`
}

// CaptureSettings is a deployment's plumbline.capture: a sampled share of
// its request/response pairs written to JSON Lines files in the data dir
// (and to an HTTP sink), redacted first.
type CaptureSettings struct {
	// SamplingRate is the share of requests captured, 0–1, failures
	// included; nil means 1 (every request).
	SamplingRate *float64 `json:"sampling_rate,omitempty"`
	// Redact lists JSONPath expressions (RFC 9535) applied to request and
	// response bodies: every value they select is removed before a record
	// leaves the gateway. nil means none.
	Redact []string `json:"redact,omitempty"`
	// Hash lists JSONPath expressions whose values are replaced by a keyed
	// hash ("hmac-sha256:…" under the server's capture key), so records can
	// still be joined on them. nil means none.
	Hash []string `json:"hash,omitempty"`
	// MaxBodyBytes bounds a body kept with a record (a larger one is left
	// out, and the record says so), 1–16 MiB; nil means 262144 (256 KiB).
	MaxBodyBytes *int `json:"max_body_bytes,omitempty"`
	// RollingRate starts a new file every minute, hour or day, as Azure's
	// data_collector.rolling_rate; "" means hour.
	RollingRate string `json:"rolling_rate,omitempty"`
	// MaxFileMB starts a new file once one reaches this size, ≥ 1; nil
	// means 100.
	MaxFileMB *int `json:"max_file_mb,omitempty"`
	// MaxFiles is how many files each gateway keeps per deployment (the
	// oldest go first), ≥ 1; nil means 48.
	MaxFiles *int `json:"max_files,omitempty"`
	// Sink also posts records, in JSON Lines batches, to an HTTP(S) URL;
	// nil means files only.
	Sink *CaptureSink `json:"sink,omitempty"`
}

// CaptureSink is an HTTP endpoint that receives captured records.
type CaptureSink struct {
	// URL receives POST requests with application/x-ndjson bodies;
	// required, http or https.
	URL string `json:"url"`
	// Headers are sent with every batch (an Authorization header, say);
	// nil means none.
	Headers map[string]string `json:"headers,omitempty"`
}

// Capture rolling rates.
const (
	RollMinute = "minute"
	RollHour   = "hour"
	RollDay    = "day"
)

// RolloutSettings is a deployment's plumbline.rollout: how
// `online-deployment rollout` shifts traffic to it by default (its flags
// override each value).
type RolloutSettings struct {
	// Steps are the shares of live traffic the deployment gets, increasing,
	// 1–100; nil means 10, 25, 50, 100.
	Steps []int `json:"steps,omitempty" spec:"unit=percent"`
	// ShadowPercent, if set, adds a first step that mirrors this share of
	// live traffic to the deployment and compares its answers, 1–50; nil or
	// 0 means no shadow step.
	ShadowPercent *int `json:"shadow_percent,omitempty" spec:"unit=percent"`
	// BakeTime is how long each step lasts at least, in seconds, ≥ 0; nil
	// means 60.
	BakeTime *int `json:"bake_time,omitempty" spec:"unit=seconds"`
	// MinRequests is how many requests a step needs before its gates are
	// judged (fewer: the step waits), ≥ 1; nil means 100.
	MinRequests *int `json:"min_requests,omitempty"`
	// MaxErrorRate is the gate on the deployment's errors (5xx, 424, 408,
	// 429) per request, 0–1; nil means 0.01.
	MaxErrorRate *float64 `json:"max_error_rate,omitempty"`
	// MaxLatencyRatio is the gate on its p99 latency over the live
	// deployments' p99, ≥ 0; 0 turns the gate off; nil means 1.5.
	MaxLatencyRatio *float64 `json:"max_latency_ratio,omitempty"`
	// MinAgreement is the shadow step's gate on the share of predictions
	// that agree with the live answers, 0–1; 0 turns it off; nil means
	// 0.95.
	MinAgreement *float64 `json:"min_agreement,omitempty"`
	// MaxContractViolationRate is the gate on requests its input contract
	// refuses (422) per request, 0–1; nil means 0.01.
	MaxContractViolationRate *float64 `json:"max_contract_violation_rate,omitempty"`
}

// ValidJSONPath checks a JSONPath expression (RFC 9535).
func ValidJSONPath(p string) error {
	_, err := jsonpath.Parse(p)
	return err
}

func validateCompare(p *problems, c *CompareSettings) {
	if c.Path != "" {
		if err := ValidJSONPath(c.Path); err != nil {
			p.add("plumbline.compare.path", "is not a JSONPath (RFC 9535, e.g. $.predictions or $.species[*]): %v", err)
		}
	}
	if c.Tolerance != nil && *c.Tolerance < 0 {
		p.add("plumbline.compare.tolerance", "must be 0 or more; got %v", *c.Tolerance)
	}
	if c.RelativeTolerance != nil && *c.RelativeTolerance < 0 {
		p.add("plumbline.compare.relative_tolerance", "must be 0 or more; got %v", *c.RelativeTolerance)
	}
}

// MaxCaptureBodyBytes bounds capture.max_body_bytes.
const MaxCaptureBodyBytes = 16 << 20

func validateCapture(p *problems, c *CaptureSettings) {
	const at = "plumbline.capture"
	if r := c.SamplingRate; r != nil && (*r < 0 || *r > 1) {
		p.add(at+".sampling_rate", "must be from 0 to 1 (the share of requests captured); got %v", *r)
	}
	for field, list := range map[string][]string{"redact": c.Redact, "hash": c.Hash} {
		for i, e := range list {
			if err := ValidJSONPath(e); err != nil {
				p.add(joinPath(at+"."+field, itoa(i)), "is not a JSONPath (RFC 9535, e.g. $.customer.ssn or $..email): %v", err)
			}
		}
	}
	if v := c.MaxBodyBytes; v != nil && (*v < 1 || *v > MaxCaptureBodyBytes) {
		p.add(at+".max_body_bytes", "must be from 1 to %d (16 MiB); got %d", MaxCaptureBodyBytes, *v)
	}
	if c.RollingRate != "" {
		if msg := oneOf(lower(c.RollingRate), RollMinute, RollHour, RollDay); msg != "" {
			p.add(at+".rolling_rate", "%s", msg)
		}
	}
	if v := c.MaxFileMB; v != nil && *v < 1 {
		p.add(at+".max_file_mb", "must be at least 1; got %d", *v)
	}
	if v := c.MaxFiles; v != nil && *v < 1 {
		p.add(at+".max_files", "must be at least 1; got %d", *v)
	}
	if s := c.Sink; s != nil {
		u, err := url.Parse(s.URL)
		switch {
		case s.URL == "":
			p.add(at+".sink.url", "missing; set the http(s) URL that receives the records")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			p.add(at+".sink.url", "must be an http or https URL; got %s", quote(s.URL))
		}
		for k := range s.Headers {
			if k == "" || strings.ContainsAny(k, " :\r\n") {
				p.add(at+".sink.headers", "%s is not a valid header name", quote(k))
			}
		}
	}
}

// ValidateRollout checks rollout settings; prefix names them in messages
// ("plumbline.rollout" in a document, "" for the CLI's flags).
func ValidateRollout(r *RolloutSettings, prefix string) error {
	var p problems
	validateRollout(&p, r, prefix)
	return p.err()
}

func validateRollout(p *problems, r *RolloutSettings, prefix string) {
	at := func(f string) string {
		if prefix == "" {
			return f
		}
		return prefix + "." + f
	}
	last := 0
	for i, s := range r.Steps {
		switch {
		case s < 1 || s > 100:
			p.add(joinPath(at("steps"), itoa(i)), "must be from 1 to 100 (percent of live traffic); got %d", s)
		case s <= last:
			p.add(joinPath(at("steps"), itoa(i)), "steps must increase; %d follows %d", s, last)
		}
		last = max(last, s)
	}
	if len(r.Steps) > 0 && last != 100 {
		p.add(at("steps"), "the last step must be 100, so that the deployment ends with all the traffic; got %d", last)
	}
	if v := r.ShadowPercent; v != nil && (*v < 0 || *v > 50) {
		p.add(at("shadow_percent"), "must be from 0 to 50 (Azure's limit for mirrored traffic); got %d", *v)
	}
	if v := r.BakeTime; v != nil && *v < 0 {
		p.add(at("bake_time"), "must be 0 or more seconds; got %d", *v)
	}
	if v := r.MinRequests; v != nil && *v < 1 {
		p.add(at("min_requests"), "must be at least 1; got %d", *v)
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"max_error_rate", r.MaxErrorRate}, {"min_agreement", r.MinAgreement}, {"max_contract_violation_rate", r.MaxContractViolationRate}} {
		if f.v != nil && (*f.v < 0 || *f.v > 1) {
			p.add(at(f.name), "must be from 0 to 1 (a share: 0.01 is 1 %%); got %v", *f.v)
		}
	}
	if v := r.MaxLatencyRatio; v != nil && *v < 0 {
		p.add(at("max_latency_ratio"), "must be 0 (no latency gate) or more; got %v", *v)
	}
}
