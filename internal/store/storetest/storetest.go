// Package storetest is the conformance suite for store.Store: every
// implementation (SQLite today, PostgreSQL later) runs Run from its tests and
// must pass it unchanged. It checks every method, every sentinel error, the
// ordering, defaulting and generation rules written on store.Store,
// cascades, and behaviour under concurrent writers.
//
// It imports only store (and test libraries); it must not import an
// implementation.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/plumbline/plumbline/internal/store"
)

// Run runs the suite. open must return a new, empty store and arrange for it
// to be closed when t ends (t.Cleanup). Subtests run in parallel, each with
// its own store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"ModelCreateGet", testModelCreateGet},
		{"ModelAutoVersion", testModelAutoVersion},
		{"ModelSameVersion", testModelSameVersion},
		{"ModelLatest", testModelLatest},
		{"ModelList", testModelList},
		{"ModelArchive", testModelArchive},
		{"Environment", testEnvironment},
		{"Endpoint", testEndpoint},
		{"UpdateEndpoint", testUpdateEndpoint},
		{"DeleteEndpointCascades", testDeleteEndpointCascades},
		{"Deployment", testDeployment},
		{"UpdateDeployment", testUpdateDeployment},
		{"Instance", testInstance},
		{"InstanceState", testInstanceState},
		{"RoutingVersion", testRoutingVersion},
		{"GatewayReport", testGatewayReport},
		{"Scale", testScale},
		{"Lease", testLease},
		{"Event", testEvent},
		{"Setting", testSetting},
		{"Rollout", testRollout},
		{"Stats", testStats},
		{"CanceledContext", testCanceledContext},
		{"ConcurrentAutoVersion", testConcurrentAutoVersion},
		{"ConcurrentUpdateEndpoint", testConcurrentUpdateEndpoint},
		{"UpdateEndpointWithDeployments", testUpdateEndpointWithDeployments},
		{"UpdateDeploymentWithEndpoint", testUpdateDeploymentWithEndpoint},
		{"TrafficDeleteRace", testTrafficDeleteRace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// cmpOpts compare records the way the Store contract allows: JSON by value,
// nil and empty maps alike, times to the microsecond.
var cmpOpts = cmp.Options{
	cmp.FilterPath(func(p cmp.Path) bool {
		t := p.Last().Type()
		return t.Kind() == reflect.Map || t.Kind() == reflect.Slice && t != rawType
	}, cmpopts.EquateEmpty()),
	cmpopts.EquateApproxTime(time.Microsecond),
	cmp.Comparer(func(a, b json.RawMessage) bool { return jsonEqual(a, b) }),
}

var rawType = reflect.TypeFor[json.RawMessage]()

func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func diff(t *testing.T, what string, got, want any) {
	t.Helper()
	if d := cmp.Diff(want, got, cmpOpts); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

// must(f())(t) is f's value, the test failing at once if f failed.
func must[V any](v V, err error) func(*testing.T) V {
	return func(t *testing.T) V {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func checkUTC(t *testing.T, what string, ts ...time.Time) {
	t.Helper()
	for _, x := range ts {
		if x.IsZero() {
			t.Errorf("%s: got zero time, want it set", what)
		} else if x.Location() != time.UTC {
			t.Errorf("%s: got location %v, want UTC", what, x.Location())
		}
	}
}

// digest makes a well-formed artifact digest from a short tag.
func digest(tag string) string {
	const hex = "0123456789abcdef"
	b := make([]byte, 64)
	for i := range b {
		b[i] = hex[(int(tag[i%len(tag)])+i)%16]
	}
	return "sha256:" + string(b)
}

var bg = context.Background()
