package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/plumbline/plumbline/internal/store"
	"github.com/plumbline/plumbline/internal/store/storetest"
	"github.com/plumbline/plumbline/internal/tmpfs"
)

func openTemp(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "plumbline.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

// TestFileModes runs with a permissive umask (not in parallel: the umask is
// process-wide) and checks the database and its WAL files are still 0600.
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "plumbline.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.CreateEndpoint(ctx, store.Endpoint{Name: "ep"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetEndpoint(ctx, "ep"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
			continue
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: got mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
		}
	}
}

func TestTightensExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plumbline.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("got mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "plumbline.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateEndpoint(ctx, store.Endpoint{Name: "ep", Traffic: map[string]int{"blue": 100}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateModelVersion(ctx, store.ModelVersion{Name: "iris", Digest: "sha256:00"}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutSetting(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	for i := range 2 { // twice: migrations are idempotent
		db, err = Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		e, err := db.GetEndpoint(ctx, "ep")
		if err != nil || e.Traffic["blue"] != 100 {
			t.Errorf("endpoint after reopen: got %+v (%v), want traffic blue=100", e, err)
		}
		m, err := db.LatestModelVersion(ctx, "iris")
		if err != nil || m.Version != "1" {
			t.Errorf("model after reopen: got %q (%v), want version 1", m.Version, err)
		}
		if v, err := db.GetSetting(ctx, "k"); err != nil || string(v) != "v" {
			t.Errorf("setting after reopen: got %q (%v), want v", v, err)
		}
		var n int
		if err := db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		names, _ := migrations.ReadDir("migrations")
		if n != len(names) {
			t.Errorf("schema_migrations rows: got %d, want %d", n, len(names))
		}
		db.Close()
	}
}

func TestPragmas(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		pragma string
		want   string
	}{
		{"journal mode", "journal_mode", "wal"},
		{"foreign keys", "foreign_keys", "1"},
		{"synchronous normal", "synchronous", "1"},
		{"busy timeout", "busy_timeout", "10000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, pool := range []struct {
				name string
				q    interface {
					QueryRowContext(context.Context, string, ...any) *sql.Row
				}
			}{{"writer", db.w}, {"reader", db.r}} {
				var got string
				if err := pool.q.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != tt.want {
					t.Errorf("%s: PRAGMA %s: got %s, want %s", pool.name, tt.pragma, got, tt.want)
				}
			}
		})
	}
}

// TestTwoHandles: two DBs on one file (as two processes would be) write
// concurrently without SQLITE_BUSY errors.
func TestTwoHandles(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "plumbline.db")
	var dbs []*DB
	for range 2 {
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		dbs = append(dbs, db)
	}
	if _, err := dbs[0].CreateEndpoint(ctx, store.Endpoint{Name: "ep", Traffic: map[string]int{}}); err != nil {
		t.Fatal(err)
	}
	const each = 20
	var wg sync.WaitGroup
	for i, db := range dbs {
		wg.Go(func() {
			for j := range each {
				if _, err := db.CreateModelVersion(ctx, store.ModelVersion{Name: "iris", Digest: fmt.Sprint(i, j)}); err != nil {
					t.Error(err)
					return
				}
				if _, err := db.UpdateEndpoint(ctx, "ep", func(e *store.Endpoint) error {
					e.Traffic["n"]++
					return nil
				}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	e, err := dbs[1].GetEndpoint(ctx, "ep")
	if err != nil || e.Traffic["n"] != 2*each {
		t.Errorf("counter: got %d (%v), want %d", e.Traffic["n"], err, 2*each)
	}
	ms, err := dbs[0].ListModels(ctx, store.ModelFilter{Name: "iris"})
	if err != nil || len(ms) != 2*each || ms[0].Version != fmt.Sprint(2*each) {
		t.Errorf("models: got %d, newest %v (%v), want %d", len(ms), ms[0].Version, err, 2*each)
	}
}

func TestOpenRejects(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro"} {
		t.Run(path, func(t *testing.T) {
			if db, err := Open(context.Background(), path); err == nil {
				db.Close()
				t.Errorf("Open(%q): got nil error, want one", path)
			}
		})
	}
}

// TestMigrateModelNamesLower: versions registered under names that differ
// only in case (before model names were case-insensitive) join the
// lower-case name; a clash of versions keeps the oldest and renames the
// others, losing none.
func TestMigrateModelNamesLower(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "plumbline.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	// The database as a plumbline before migration 13 left it.
	if _, err := db.w.ExecContext(ctx, `DELETE FROM schema_migrations WHERE version = 13`); err != nil {
		t.Fatal(err)
	}
	for i, row := range [][2]string{{"rm-e", "1"}, {"RM-E", "1"}, {"RM-E", "2"}, {"Rm-E", "1"}, {"Iris", "7"}} {
		if _, err := db.w.ExecContext(ctx, `INSERT INTO models (name, version, digest, created_at) VALUES (?, ?, ?, ?)`,
			row[0], row[1], fmt.Sprintf("sha256:%064d", i), int64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ms, err := db.ListModels(ctx, store.ModelFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Name+":"+m.Version+"="+m.Digest[len(m.Digest)-1:])
	}
	sort.Strings(got)
	want := []string{"iris:7=4", "rm-e:1-RM-E=1", "rm-e:1-Rm-E=3", "rm-e:1=0", "rm-e:2=2"}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("after the migration:\n got %v\nwant %v", got, want)
	}
}

// TestDiskFull: a write on a full disk fails with store.ErrNoSpace (so the
// API can say why) and leaves the database usable once there is room.
func TestDiskFull(t *testing.T) {
	dir := tmpfs.Mount(t, 2<<20)
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(dir, "plumbline.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	var werr error
	for i := 0; i < 200 && werr == nil; i++ { // until the WAL needs a page it cannot get
		_, werr = db.CreateEndpoint(ctx, store.Endpoint{Name: fmt.Sprintf("ep-%03d", i), Spec: json.RawMessage(`{"description":"` + strings.Repeat("x", 4000) + `"}`)})
	}
	if !errors.Is(werr, store.ErrNoSpace) {
		t.Fatalf("writes on a full disk: got %v, want store.ErrNoSpace", werr)
	}
	os.Remove(filler)
	if _, err := db.CreateEndpoint(ctx, store.Endpoint{Name: "after"}); err != nil {
		t.Fatalf("a write once there is room: %v", err)
	}
	if _, err := db.GetEndpoint(ctx, "after"); err != nil {
		t.Fatal(err)
	}
}
