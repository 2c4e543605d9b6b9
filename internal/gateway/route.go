package gateway

import (
	"crypto/sha256"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/plumbline/plumbline/internal/auth"
	"github.com/plumbline/plumbline/internal/compare"
	"github.com/plumbline/plumbline/internal/contract"
)

// action is what a scoring URI asks for.
type action uint8

const (
	actionScore     action = iota + 1 // …/score → the deployment's ScoringPath
	actionOpenAPI                     // …/swagger.json → the deployment's OpenAPIPath
	actionPrototype                   // …/prototype → the deployment's input contract
)

// pathPrefix starts a path-based scoring URI: /endpoints/<endpoint>/score.
const pathPrefix = "/endpoints/"

// parsePath parses a path-based scoring URI, /endpoints/<e>/score or
// /endpoints/<e>/swagger.json. The endpoint name comes back lower-cased.
func parsePath(p string) (endpoint string, a action, ok bool) {
	rest, found := strings.CutPrefix(p, pathPrefix)
	if !found {
		return "", 0, false
	}
	name, tail, found := strings.Cut(rest, "/")
	if !found || !validLabel(name) {
		return "", 0, false
	}
	a, ok = actionOf("/" + tail)
	if !ok {
		return "", 0, false
	}
	return strings.ToLower(name), a, true
}

// actionOf maps the path of a host-based scoring URI to its action.
func actionOf(p string) (action, bool) {
	switch p {
	case "/score":
		return actionScore, true
	case "/swagger.json":
		return actionOpenAPI, true
	case "/prototype":
		return actionPrototype, true
	}
	return 0, false
}

// parseHost returns the endpoint of a host-based scoring URI,
// <endpoint>.<domain>[:port], lower-cased. domains are lower-case without
// leading or trailing dots.
func parseHost(host string, domains []string) (string, bool) {
	host = stripPort(host)
	host = strings.TrimSuffix(host, ".")
	for _, d := range domains {
		if len(host) <= len(d)+1 || host[len(host)-len(d)-1] != '.' || !strings.EqualFold(host[len(host)-len(d):], d) {
			continue
		}
		label := host[:len(host)-len(d)-1]
		if validLabel(label) {
			return strings.ToLower(label), true
		}
	}
	return "", false
}

// stripPort removes a :port suffix from a Host header value. An IPv6 literal
// keeps its brackets, which makes it no endpoint label.
func stripPort(host string) string {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.IndexByte(host[i:], ']') >= 0 {
		return host
	}
	return host[:i]
}

// validLabel reports whether s can be an endpoint name: 1–63 letters, digits
// and hyphens (Azure's own rule, 3–32 and a letter first, is the control
// plane's to enforce; the gateway only needs a safe map key).
func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// authMode is Endpoint.AuthMode, parsed once per snapshot.
type authMode uint8

const (
	authInvalid authMode = iota // unknown mode: every request is refused
	authKey
	authAMLToken
	authAADToken
)

func parseAuthMode(s string) authMode {
	switch strings.ToLower(s) {
	case "", "key":
		return authKey
	case "aml_token":
		return authAMLToken
	case "aad_token":
		return authAADToken
	}
	return authInvalid
}

// table is the compiled, immutable form of a Snapshot: what a request reads.
type table struct {
	endpoints map[string]*route
}

// route is one endpoint, compiled.
type route struct {
	name string
	auth authMode
	// subject is what its aml_tokens are bound to.
	subject auth.Subject
	// keys are the sha256 sums of the non-empty keys, so the constant-time
	// comparison never leaks a key's length.
	keys [][sha256.Size]byte
	// targets by lower-case deployment name.
	targets map[string]*target
	// split holds the deployments with positive weight in name order, each
	// with the running total of weights up to and including it.
	split []weighted
	total int
	// mirror, if set, receives mirrorPct percent of live requests.
	mirror    *target
	mirrorPct int
	// The safe-rollout parts (safety.go): the traffic epoch, the
	// comparison of mirrored answers, and a running rollout's step.
	epoch    int64
	comparer *compare.Comparer
	figs     *figSet // nil unless a live rollout step is running
	guard    *guard  // nil unless a live rollout step holds back its candidate
	fallback []weighted
	ftotal   int
}

type weighted struct {
	upTo int
	t    *target
}

// target is one deployment as a request sees it for its whole life. The
// pool behind it is shared by every snapshot that names the deployment.
type target struct {
	endpoint    string
	name        string
	nameHeader  []string // the azureml-model-deployment response header value
	scoringPath string
	openAPIPath string
	// scoringURI and openAPIURI are the paths as sent on the wire (escaped).
	scoringURI string
	openAPIURI string
	timeout    time.Duration
	pool       *pool
	// modelName and modelVersion are logged with each request.
	modelName    string
	modelVersion string
	// contract, if set, checks every scoring request's body.
	contract *contract.Checker
	// prov are its provenance headers; capture, if set, samples its
	// requests for capture (safety.go).
	prov    provenance
	capture *captureConf
}

// pick chooses a deployment by weight, or nil when none has positive weight.
func (rt *route) pick() *target {
	switch len(rt.split) {
	case 0:
		return nil
	case 1:
		return rt.split[0].t
	}
	n := rand.IntN(rt.total)
	for _, w := range rt.split {
		if n < w.upTo {
			return w.t
		}
	}
	return rt.split[len(rt.split)-1].t
}

// mirrorTarget returns the deployment a live request is copied to, or nil.
func (rt *route) mirrorTarget() *target {
	if rt.mirror == nil || rt.mirrorPct <= 0 {
		return nil
	}
	if rt.mirrorPct >= 100 || rand.IntN(100) < rt.mirrorPct {
		return rt.mirror
	}
	return nil
}

// DefaultRequestTimeout applies when a Deployment's RequestTimeout is zero;
// it is Azure's request_timeout_ms default.
const DefaultRequestTimeout = 5 * time.Second

// compileRoute builds the request-time form of ep. poolFor returns the
// long-lived pool of one of its deployments (names lower-case), updated to d.
func compileRoute(ep *Endpoint, poolFor func(endpoint, deployment string, d *Deployment) *pool) *route {
	name := strings.ToLower(ep.Name)
	rt := &route{
		name:    name,
		auth:    parseAuthMode(ep.AuthMode),
		subject: auth.Subject{Endpoint: name, ID: ep.ID, Generation: ep.TokenGeneration},
		targets: make(map[string]*target, len(ep.Deployments)),
	}
	for _, k := range ep.Keys {
		if k != "" {
			rt.keys = append(rt.keys, sha256.Sum256([]byte(k)))
		}
	}
	for key, d := range ep.Deployments {
		if d == nil {
			continue
		}
		dname := strings.ToLower(d.Name)
		if dname == "" {
			dname = strings.ToLower(key)
		}
		timeout := d.RequestTimeout
		if timeout <= 0 {
			timeout = DefaultRequestTimeout
		}
		scoring := d.ScoringPath
		if scoring == "" {
			scoring = "/score"
		}
		rt.targets[dname] = &target{
			endpoint:     name,
			name:         dname,
			nameHeader:   []string{dname},
			scoringPath:  scoring,
			openAPIPath:  d.OpenAPIPath,
			scoringURI:   escapedPath(scoring),
			openAPIURI:   escapedPath(d.OpenAPIPath),
			timeout:      timeout,
			pool:         poolFor(name, dname, d),
			modelName:    d.ModelName,
			modelVersion: d.ModelVersion,
			contract:     compileContract(d.Contract),
			prov:         deploymentProvenance(dname, d),
		}
	}
	names := make([]string, 0, len(ep.Traffic))
	for n, pct := range ep.Traffic {
		if pct > 0 && rt.targets[strings.ToLower(n)] != nil {
			names = append(names, strings.ToLower(n))
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	for _, n := range names {
		pct := trafficOf(ep.Traffic, n)
		rt.total += pct
		rt.split = append(rt.split, weighted{upTo: rt.total, t: rt.targets[n]})
	}
	for n, pct := range ep.Mirror {
		if t := rt.targets[strings.ToLower(n)]; t != nil && pct > 0 {
			rt.mirror, rt.mirrorPct = t, min(pct, 100)
			break // at most one mirror target
		}
	}
	return rt
}

// escapedPath is p as it goes on a request line.
func escapedPath(p string) string {
	if p == "" {
		return ""
	}
	return (&url.URL{Path: p}).EscapedPath()
}

// trafficOf returns the weight of deployment n (lower-case) whatever the
// case of its key in m.
func trafficOf(m map[string]int, n string) int {
	if v, ok := m[n]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, n) {
			return v
		}
	}
	return 0
}

// Scoring reports whether r is a scoring request by its path (and host,
// for host-based scoring URIs): what this handler serves, decided before
// it runs. A connection loop that serves only scoring requests itself
// (internal/gateway/h1) asks it.
func (g *Gateway) Scoring(r *http.Request) bool {
	if _, _, ok := parsePath(r.URL.Path); ok {
		return true
	}
	if _, ok := actionOf(r.URL.Path); !ok {
		return false
	}
	_, ok := parseHost(r.Host, g.domains)
	return ok
}
