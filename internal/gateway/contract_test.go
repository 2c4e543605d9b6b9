package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/plumbline/plumbline/internal/contract"
)

var irisContract = &contract.Contract{
	Columns: []contract.Column{
		{Name: "sepal_length", Type: contract.TypeNumeric}, {Name: "sepal_width", Type: contract.TypeNumeric},
		{Name: "petal_length", Type: contract.TypeNumeric}, {Name: "petal_width", Type: contract.TypeNumeric},
	},
	Source: "test",
}

const irisRow = `{"sepal_length":[6.7],"sepal_width":[3.3],"petal_length":[5.7],"petal_width":[2.5]}`

// TestContractEnforced: a request that breaks the contract gets 422 naming
// the field and never reaches the model (nor the mirror); a good one does.
func TestContractEnforced(t *testing.T) {
	var seen atomic.Int32
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `["virginica"]`)
	})
	var mirrored atomic.Int32
	maddr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		mirrored.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
	})
	g, _, front := newTestGateway(t, Config{})
	blue := dep("blue", addr)
	blue.Contract = irisContract
	green := dep("green", maddr)
	ep := endpoint("ep", blue, green)
	ep.Mirror = map[string]int{"green": 50}
	g.Update(snapshot(ep))
	key := map[string]string{"Authorization": "Bearer " + testKey, "Content-Type": "application/json"}

	res, body := call(t, front, "POST", "/endpoints/ep/score", key, `{"sepal_length":[6.7,1,"abc"],"sepal_width":[3.3,1,1],"petal_length":[5.7,1,1]}`)
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("got %d %s, want 422", res.StatusCode, body)
	}
	var reply struct {
		Error struct {
			Code    string             `json:"code"`
			Details []contract.Problem `json:"details"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &reply); err != nil {
		t.Fatalf("422 body is not JSON: %v\n%s", err, body)
	}
	var msgs []string
	for _, d := range reply.Error.Details {
		msgs = append(msgs, d.Message)
	}
	got := strings.Join(msgs, "\n")
	for _, want := range []string{`sepal_length[2]: expected a number, got "abc"`, "missing column petal_width"} {
		if !strings.Contains(got, want) {
			t.Errorf("422 details %q do not contain %q", got, want)
		}
	}
	if reply.Error.Code != "InputContractViolation" || res.Header.Get("Azureml-Model-Deployment") != "blue" {
		t.Errorf("code %q, deployment header %q", reply.Error.Code, res.Header.Get("Azureml-Model-Deployment"))
	}
	if n := seen.Load(); n != 0 {
		t.Errorf("the model saw %d requests that broke the contract, want 0", n)
	}

	res, body = call(t, front, "POST", "/endpoints/ep/score", key, irisRow)
	if res.StatusCode != 200 || body != `["virginica"]` {
		t.Fatalf("valid request: got %d %s", res.StatusCode, body)
	}
	if n := seen.Load(); n != 1 {
		t.Errorf("the model saw %d requests, want 1", n)
	}
	if err := g.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := mirrored.Load(); n > 1 {
		t.Errorf("the mirror saw %d requests; only the valid one may be copied", n)
	}
}

func TestContractPublished(t *testing.T) {
	g, _, front := newTestGateway(t, Config{})
	blue := dep("blue", okBackend(t, "{}"))
	blue.Contract = irisContract
	blue.OpenAPIPath = "/openapi.json"
	plain := dep("plain", okBackend(t, "{}"))
	g.Update(snapshot(endpoint("ep", blue, plain)))
	key := map[string]string{"Authorization": "Bearer " + testKey}

	res, body := call(t, front, "GET", "/endpoints/ep/prototype", key, "")
	if res.StatusCode != 200 {
		t.Fatalf("prototype: got %d %s", res.StatusCode, body)
	}
	var doc struct {
		Prototype    map[string]map[string]any `json:"prototype"`
		ExtraColumns string                    `json:"extra_columns"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Prototype["petal_width"]["type"] != "numeric" || doc.ExtraColumns != "reject" {
		t.Errorf("prototype document: %s", body)
	}
	res, body = call(t, front, "GET", "/endpoints/ep/swagger.json", key, "")
	if res.StatusCode != 200 || !strings.Contains(body, `"openapi":"3.0.3"`) || !strings.Contains(body, `"petal_width"`) {
		t.Errorf("swagger.json: got %d %s", res.StatusCode, body)
	}
	res, _ = call(t, front, "GET", "/endpoints/ep/prototype", nil, "")
	if res.StatusCode != 401 {
		t.Errorf("prototype without a key: got %d, want 401", res.StatusCode)
	}
	res, body = call(t, front, "GET", "/endpoints/ep/prototype", map[string]string{"Authorization": "Bearer " + testKey, "azureml-model-deployment": "plain"}, "")
	if res.StatusCode != 404 || !strings.Contains(body, "no input contract") {
		t.Errorf("deployment without contract: got %d %s, want 404", res.StatusCode, body)
	}
}

// BenchmarkContract measures what checking the contract adds to a one-row
// request, side by side in one run: the same gateway and fake model, with
// and without a contract. Compare the two ns/op (the lead's budget is
// 20 µs added).
func BenchmarkContract(b *testing.B) {
	run := func(b *testing.B, c *contract.Contract) {
		g, err := New(Config{Transport: &fakeUpstream{}})
		if err != nil {
			b.Fatal(err)
		}
		d := roomy("blue", "blue:1")
		d.Contract = c
		g.Update(snapshot(endpoint("ep", d)))
		b.ReportAllocs()
		for b.Loop() {
			req := httptest.NewRequest("POST", "/endpoints/ep/score", strings.NewReader(irisRow))
			req.Header.Set("Authorization", "Bearer "+testKey)
			rec := httptest.NewRecorder()
			g.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Fatalf("got %d %s", rec.Code, rec.Body)
			}
		}
	}
	b.Run("no-contract", func(b *testing.B) { run(b, nil) })
	b.Run("prototype", func(b *testing.B) { run(b, irisContract) })
	b.Run("check-only", func(b *testing.B) {
		k, err := contract.Compile(irisContract)
		if err != nil {
			b.Fatal(err)
		}
		t := &target{contract: k}
		body := []byte(irisRow)
		b.ReportAllocs()
		for b.Loop() {
			if err := checkContract(t, body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
