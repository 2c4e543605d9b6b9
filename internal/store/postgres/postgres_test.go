package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/store"
	"github.com/plumbline/plumbline/internal/store/postgres"
	"github.com/plumbline/plumbline/internal/store/postgres/pgtest"
	"github.com/plumbline/plumbline/internal/store/storetest"
)

func open(t *testing.T, url string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, pgtest.URL(t)) })
}

// TestReplicasShareState: two stores on one database (two replicas) see
// each other's writes, a routing change committed by one wakes the other's
// wait through NOTIFY, and migrations run once when both start together.
func TestReplicasShareState(t *testing.T) {
	url := pgtest.URL(t)
	var a, b *postgres.DB
	var wg sync.WaitGroup
	var errA, errB error
	wg.Go(func() { a, errA = postgres.Open(context.Background(), url, nil) })
	wg.Go(func() { b, errB = postgres.Open(context.Background(), url, nil) })
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("two replicas opening at once: %v, %v", errA, errB)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	ctx := context.Background()
	v, err := b.RoutingVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		v   int64
		err error
	}
	done := make(chan res, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		nv, err := b.WaitRoutingChange(wctx, v)
		done <- res{nv, err}
	}()
	time.Sleep(100 * time.Millisecond)
	begin := time.Now()
	if _, err := a.CreateEndpoint(ctx, store.Endpoint{Name: "ep"}); err != nil {
		t.Fatal(err)
	}
	r := <-done
	took := time.Since(begin)
	if r.err != nil || r.v <= v {
		t.Fatalf("replica b's wait = %d, %v; want a version above %d", r.v, r.err, v)
	}
	t.Logf("replica b saw replica a's change after %s", took)
	if took >= time.Second {
		t.Errorf("replica b saw the change after %s, want well within a second (NOTIFY, not the 1 s poll)", took)
	}
	if _, err := b.GetEndpoint(ctx, "ep"); err != nil {
		t.Errorf("replica b reads replica a's endpoint: %v", err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://plumbline:s3cret@db:5432/pl": "postgres://plumbline:xxxxx@db:5432/pl",
		"postgres://db/pl":                       "postgres://db/pl",
	} {
		if got := postgres.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
