package server

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/plumbline/plumbline/internal/gateway"
	"github.com/plumbline/plumbline/internal/store"
	"github.com/plumbline/plumbline/internal/store/sqlite"
)

// TestInFlightCountsEveryGateway: an instance being stopped waits for this
// process's gateway and for every other gateway whose report names it, in
// its table (counted 1) or with requests in flight (their number).
func TestInFlightCountsEveryGateway(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	gw, err := gateway.New(gateway.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := &control{st: st, gw: gw, gwID: "local", log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if n := c.inFlight("ep", "blue", "blue-0"); n != 0 {
		t.Fatalf("no gateway knows the instance: inFlight = %d, want 0", n)
	}
	for _, r := range []store.GatewayReport{
		{ID: "local", Instances: map[string]int{"ep/blue/blue-0": 7}}, // this process's: read from gw itself
		{ID: "gw-b", Instances: map[string]int{"ep/blue/blue-0": 0}},  // still in its table
		{ID: "gw-c", Instances: map[string]int{"ep/blue/blue-0": 2}},  // two requests in flight
		{ID: "gw-d", Instances: map[string]int{"ep/blue/blue-1": 5}},  // another instance
	} {
		if err := st.PutGatewayReport(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.inFlight("ep", "blue", "blue-0"); n != 3 {
		t.Errorf("inFlight = %d, want 3 (gw-b lists it, gw-c has 2 in flight)", n)
	}
	// This process's gateway lists it too.
	gw.Update(&gateway.Snapshot{Endpoints: map[string]*gateway.Endpoint{"ep": {
		Name: "ep", Deployments: map[string]*gateway.Deployment{"blue": {
			Name: "blue", Instances: []gateway.Instance{{Name: "blue-0", Addr: "127.0.0.1:1"}},
		}},
	}}})
	if n := c.inFlight("ep", "blue", "blue-0"); n != 4 {
		t.Errorf("inFlight with the local gateway listing it = %d, want 4", n)
	}
	if err := st.DeleteGatewayReport(ctx, "gw-b"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteGatewayReport(ctx, "gw-c"); err != nil {
		t.Fatal(err)
	}
	gw.Update(nil)
	if n := c.inFlight("ep", "blue", "blue-0"); n != 0 {
		t.Errorf("once every gateway let go: inFlight = %d, want 0", n)
	}
}
