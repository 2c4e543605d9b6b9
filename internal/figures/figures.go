// Package figures holds the measurements a safe rollout is judged on, in a
// form that adds up across gateways: each gateway keeps its own figures per
// endpoint and traffic epoch, writes them to the shared store, and the
// rollout controller, the API and the studio merge the rows of every
// gateway. Quantiles come from DDSketch (relative accuracy 1 %), whose
// sketches merge exactly.
//
// It is a leaf: it must not import anything of plumbline's.
package figures

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"sort"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// Accuracy is the sketches' relative accuracy: a quantile is within 1 % of
// the true value.
const Accuracy = 0.01

// Sketch is a mergeable distribution of non-negative values with exact
// count, sum, min and max. The zero value is empty and usable. Not safe for
// concurrent use.
type Sketch struct {
	s *ddsketch.DDSketchWithExactSummaryStatistics
}

func newSketch() *ddsketch.DDSketchWithExactSummaryStatistics {
	s, err := ddsketch.NewDefaultDDSketchWithExactSummaryStatistics(Accuracy)
	if err != nil {
		panic(err) // Accuracy is valid
	}
	return s
}

// Add records v (negative values count as 0).
func (k *Sketch) Add(v float64) {
	if k.s == nil {
		k.s = newSketch()
	}
	_ = k.s.Add(max(0, v))
}

// Count is the number of values added.
func (k *Sketch) Count() int64 {
	if k.s == nil {
		return 0
	}
	return int64(k.s.GetCount())
}

// Mean is the exact mean (0 when empty).
func (k *Sketch) Mean() float64 {
	if k.s == nil || k.s.GetCount() == 0 {
		return 0
	}
	return k.s.GetSum() / k.s.GetCount()
}

// Max is the exact maximum (0 when empty).
func (k *Sketch) Max() float64 {
	if k.s == nil || k.s.IsEmpty() {
		return 0
	}
	v, _ := k.s.GetMaxValue()
	return v
}

// Quantile is the q-quantile (0 ≤ q ≤ 1) within Accuracy; 0 when empty.
func (k *Sketch) Quantile(q float64) float64 {
	if k.s == nil || k.s.IsEmpty() {
		return 0
	}
	v, err := k.s.GetValueAtQuantile(q)
	if err != nil {
		return 0
	}
	return v
}

// Merge adds o's values to k.
func (k *Sketch) Merge(o *Sketch) {
	if o == nil || o.s == nil {
		return
	}
	if k.s == nil {
		k.s = newSketch()
	}
	_ = k.s.MergeWith(o.s)
}

// Clone returns an independent copy.
func (k *Sketch) Clone() Sketch {
	if k.s == nil {
		return Sketch{}
	}
	return Sketch{s: k.s.Copy()}
}

// MarshalJSON encodes the sketch compactly (base64 of DDSketch's binary
// encoding); an empty sketch is null.
func (k Sketch) MarshalJSON() ([]byte, error) {
	if k.s == nil || k.s.IsEmpty() {
		return []byte("null"), nil
	}
	var b []byte
	k.s.Encode(&b, false)
	return json.Marshal(base64.StdEncoding.EncodeToString(b))
}

// UnmarshalJSON decodes MarshalJSON's form.
func (k *Sketch) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		k.s = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("sketch: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("sketch: %w", err)
	}
	m, err := mapping.NewLogarithmicMapping(Accuracy)
	if err != nil {
		return err
	}
	d, err := ddsketch.DecodeDDSketchWithExactSummaryStatistics(raw, store.DenseStoreConstructor, m)
	if err != nil {
		return fmt.Errorf("sketch: %w", err)
	}
	k.s = d
	return nil
}

// Deployment are one deployment's figures over some requests: what the
// error-rate, latency and contract gates judge.
type Deployment struct {
	// Requests answered (any status), Errors among them (5xx, 424, 408,
	// 429: the deployment failed the caller; a caller's own mistake is
	// not an error), ContractViolations (422: the deployment's input
	// contract refused the request).
	Requests           int64 `json:"requests"`
	Errors             int64 `json:"errors"`
	ContractViolations int64 `json:"contract_violations"`
	// Latency in seconds, from receipt to the end of the answer.
	Latency Sketch `json:"latency"`
	// Tripped, when set, says the gateway that measured these figures saw
	// a gate breached over its own first sample, and why.
	Tripped string `json:"tripped,omitempty"`
}

// IsError reports whether a gateway status counts as a deployment error.
func IsError(status int) bool {
	return status >= 500 || status == 424 || status == 408 || status == 429
}

// Observe records one answered request.
func (d *Deployment) Observe(status int, seconds float64) {
	d.Requests++
	switch {
	case IsError(status):
		d.Errors++
	case status == 422:
		d.ContractViolations++
	}
	d.Latency.Add(seconds)
}

// Merge adds o to d.
func (d *Deployment) Merge(o *Deployment) {
	d.Requests += o.Requests
	d.Errors += o.Errors
	d.ContractViolations += o.ContractViolations
	d.Latency.Merge(&o.Latency)
	if d.Tripped == "" {
		d.Tripped = o.Tripped
	}
}

// Clone returns an independent copy.
func (d *Deployment) Clone() Deployment {
	c := *d
	c.Latency = d.Latency.Clone()
	return c
}

// ErrorRate is Errors/Requests (0 without requests).
func (d *Deployment) ErrorRate() float64 { return ratio(d.Errors, d.Requests) }

// ContractViolationRate is ContractViolations/Requests.
func (d *Deployment) ContractViolationRate() float64 { return ratio(d.ContractViolations, d.Requests) }

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// MaxClasses bounds the labels a flip matrix keeps per side; further labels
// count as OtherClass.
const MaxClasses = 32

// OtherClass stands for the labels past MaxClasses.
const OtherClass = "(other)"

// Pair are the figures of a shadow comparison: a live deployment's answers
// against its shadow's (mirror) or against captured answers (replay).
type Pair struct {
	// Pairs counts mirrored requests both sides answered and that were
	// compared; PairsAgreed those whose every prediction agreed.
	Pairs       int64 `json:"pairs"`
	PairsAgreed int64 `json:"pairs_agreed"`
	// Incomparable counts pairs that could not be compared (an answer not
	// JSON or too large, a path that selects nothing, an error on either
	// side).
	Incomparable int64 `json:"incomparable"`
	// Predictions compared and Agreed among them.
	Predictions int64 `json:"predictions"`
	Agreed      int64 `json:"agreed"`
	// Deltas are |live − shadow| of the numbers compared.
	Deltas Sketch `json:"deltas"`
	// Classes counts (live label → shadow label) for categorical
	// predictions; off the diagonal are the flips.
	Classes map[string]map[string]int64 `json:"classes,omitempty"`
	// LiveLatency and ShadowLatency (seconds) of the mirrored requests,
	// LiveErrors and ShadowErrors among them (errors as Deployment counts
	// them), ShadowContractViolations the copies the shadow's input
	// contract refused (not sent).
	LiveLatency              Sketch `json:"live_latency"`
	ShadowLatency            Sketch `json:"shadow_latency"`
	LiveRequests             int64  `json:"live_requests"`
	ShadowRequests           int64  `json:"shadow_requests"`
	LiveErrors               int64  `json:"live_errors"`
	ShadowErrors             int64  `json:"shadow_errors"`
	ShadowContractViolations int64  `json:"shadow_contract_violations"`
}

// AddClass counts one (live, shadow) label pair, folding labels past
// MaxClasses into OtherClass, and returns the labels it counted.
func (p *Pair) AddClass(live, shadow string) (string, string) {
	if p.Classes == nil {
		p.Classes = map[string]map[string]int64{}
	}
	live = p.fold(live, true)
	shadow = p.fold(shadow, false)
	row := p.Classes[live]
	if row == nil {
		row = map[string]int64{}
		p.Classes[live] = row
	}
	row[shadow]++
	return live, shadow
}

func (p *Pair) fold(label string, live bool) string {
	if live {
		if _, ok := p.Classes[label]; ok || len(p.Classes) < MaxClasses {
			return label
		}
		return OtherClass
	}
	n := 0
	seen := map[string]bool{}
	for _, row := range p.Classes {
		if _, ok := row[label]; ok {
			return label
		}
		for s := range row {
			if !seen[s] {
				seen[s] = true
				n++
			}
		}
	}
	if n < MaxClasses {
		return label
	}
	return OtherClass
}

// Merge adds o to p.
func (p *Pair) Merge(o *Pair) {
	p.Pairs += o.Pairs
	p.PairsAgreed += o.PairsAgreed
	p.Incomparable += o.Incomparable
	p.Predictions += o.Predictions
	p.Agreed += o.Agreed
	p.Deltas.Merge(&o.Deltas)
	for l, row := range o.Classes {
		for s, n := range row {
			if p.Classes == nil {
				p.Classes = map[string]map[string]int64{}
			}
			if p.Classes[l] == nil {
				p.Classes[l] = map[string]int64{}
			}
			p.Classes[l][s] += n
		}
	}
	p.LiveLatency.Merge(&o.LiveLatency)
	p.ShadowLatency.Merge(&o.ShadowLatency)
	p.LiveRequests += o.LiveRequests
	p.ShadowRequests += o.ShadowRequests
	p.LiveErrors += o.LiveErrors
	p.ShadowErrors += o.ShadowErrors
	p.ShadowContractViolations += o.ShadowContractViolations
}

// Clone returns an independent copy.
func (p *Pair) Clone() Pair {
	c := *p
	c.Deltas = p.Deltas.Clone()
	c.LiveLatency = p.LiveLatency.Clone()
	c.ShadowLatency = p.ShadowLatency.Clone()
	if p.Classes != nil {
		c.Classes = make(map[string]map[string]int64, len(p.Classes))
		for k, row := range p.Classes {
			c.Classes[k] = maps.Clone(row)
		}
	}
	return c
}

// Agreement is Agreed/Predictions (0 without predictions).
func (p *Pair) Agreement() float64 { return ratio(p.Agreed, p.Predictions) }

// ShadowErrorRate is ShadowErrors/ShadowRequests.
func (p *Pair) ShadowErrorRate() float64 { return ratio(p.ShadowErrors, p.ShadowRequests) }

// Flip is one cell of a flip matrix off its diagonal.
type Flip struct {
	Live   string `json:"live"`
	Shadow string `json:"shadow"`
	Count  int64  `json:"count"`
}

// Flips lists the off-diagonal cells, most frequent first.
func (p *Pair) Flips() []Flip {
	var out []Flip
	for l, row := range p.Classes {
		for s, n := range row {
			if l != s && n > 0 {
				out = append(out, Flip{l, s, n})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		if out[i].Live != out[j].Live {
			return out[i].Live < out[j].Live
		}
		return out[i].Shadow < out[j].Shadow
	})
	return out
}
