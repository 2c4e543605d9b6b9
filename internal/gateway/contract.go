package gateway

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"sync"

	"github.com/valyala/fastjson"

	"github.com/plumbline/plumbline/internal/contract"
)

// The input contract on the request path: a deployment with a Contract has
// every scoring request's body checked before it takes a queue slot; a body
// that breaks the contract gets 422 with one entry per offending field, and
// never reaches the model (nor its mirror).

// errNoContract answers /prototype for a deployment without a contract.
var errNoContract = errors.New("deployment has no input contract")

// contractError is a request that breaks the contract; body is the 422
// response.
type contractError struct{ body []byte }

func (e *contractError) Error() string { return "input contract violation" }

// contractParsers are reused across requests: a warm parser checks a valid
// request without allocating.
var contractParsers fastjson.ParserPool

// problemBufs holds small problem slices, so a check needs no allocation.
var problemBufs = sync.Pool{New: func() any { b := make([]contract.Problem, 0, 4); return &b }}

// checkContract checks body against t's contract.
func checkContract(t *target, body []byte) error {
	p := contractParsers.Get()
	bp := problemBufs.Get().(*[]contract.Problem)
	problems := t.contract.Check(body, p, (*bp)[:0])
	var err error
	if len(problems) > 0 {
		err = &contractError{body: contract.MarshalProblems(problems)}
	}
	contractParsers.Put(p)
	clear(problems)
	*bp = problems[:0]
	problemBufs.Put(bp)
	return err
}

// checkers caches compiled contracts by content: routing snapshots are
// rebuilt often and a JSON Schema is worth compiling once.
var checkers struct {
	sync.Mutex
	m map[[sha256.Size]byte]*contract.Checker
}

// compileContract returns the checker of c, or nil when c is nil or cannot
// be compiled (the control plane validated it; a contract the gateway cannot
// read is not enforced rather than refusing every request).
func compileContract(c *contract.Contract) *contract.Checker {
	if c == nil {
		return nil
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil
	}
	key := sha256.Sum256(b)
	checkers.Lock()
	defer checkers.Unlock()
	if k, ok := checkers.m[key]; ok {
		return k
	}
	k, err := contract.Compile(c)
	if err != nil {
		return nil
	}
	if checkers.m == nil || len(checkers.m) >= 256 {
		checkers.m = make(map[[sha256.Size]byte]*contract.Checker)
	}
	checkers.m[key] = k
	return k
}

// primary is the deployment /prototype describes: the one named by
// azureml-model-deployment, else the one with the most traffic (the first by
// name on a tie), else the only one.
func (rt *route) primary(r *http.Request) (*target, error) {
	if v := r.Header[hdrModelDeployment]; len(v) > 0 && v[0] != "" {
		name := lowerASCII(v[0])
		if t := rt.targets[name]; t != nil {
			return t, nil
		}
		return nil, newUnknownDeploymentError(name)
	}
	var best *target
	prev := 0
	bestPct := 0
	for _, w := range rt.split {
		if pct := w.upTo - prev; best == nil || pct > bestPct {
			best, bestPct = w.t, pct
		}
		prev = w.upTo
	}
	if best == nil && len(rt.targets) == 1 {
		for _, t := range rt.targets {
			best = t
		}
	}
	if best == nil {
		return nil, errNoPositiveWeight
	}
	return best, nil
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// serveContractDoc answers GET …/prototype (the contract) and, for a
// deployment with a contract, …/swagger.json (an OpenAPI document generated
// from it).
func serveContractDoc(st *reqState, t *target, act action) error {
	if t.contract == nil {
		return errNoContract
	}
	c := t.contract.Contract()
	var body []byte
	if act == actionPrototype {
		body = c.Document()
	} else {
		body = c.OpenAPI(t.endpoint, t.name)
	}
	h := st.w.Header()
	h[hdrModelDeployment] = t.nameHeader
	h[hdrContentType] = valJSON
	st.w.WriteHeader(http.StatusOK)
	_, _ = st.w.Write(body)
	return nil
}
