// Package sqlstore is store.Store on database/sql, written once for every
// SQL dialect plumbline supports: SQLite (store/sqlite, the embedded
// default) and PostgreSQL (store/postgres, for replicas that share state).
// A dialect gives its connections, its migrations and the few things SQL
// does not say the same way (error codes, row locks, cross-process change
// notifications); the queries, the Store rules and the transactions live
// here, so both pass the storetest suite with the same code.
//
// Queries use $1, $2… placeholders, which both dialects read. Booleans are
// INTEGER 0/1 and times are unix nanoseconds in every dialect.
//
// This package must not import anything from plumbline but store.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/plumbline/plumbline/internal/store"
)

// Dialect is what differs between SQL databases.
type Dialect struct {
	// Name is "sqlite" or "postgres", for messages.
	Name string
	// Migrations holds the dialect's schema as NNNN_name.sql files at its
	// root, applied in order, one transaction each, recorded in
	// schema_migrations.
	Migrations fs.FS
	// IsUnique and IsForeignKey classify a constraint violation.
	IsUnique, IsForeignKey func(error) bool
	// IsNoSpace, if set, recognises a write that failed for a full disk;
	// writes return it wrapped in store.ErrNoSpace.
	IsNoSpace func(error) bool
	// ForUpdate is appended to the SELECT of a read-modify-write: " FOR
	// UPDATE" where transactions run concurrently; "" where writes are
	// serialised already (SQLite's BEGIN IMMEDIATE).
	ForUpdate string
	// LockName, if set, serialises transactions on a name until the
	// transaction ends (PostgreSQL: an advisory transaction lock).
	LockName func(ctx context.Context, tx *sql.Tx, name string) error
	// MigrationLock, if set, runs fn holding a lock that keeps replicas
	// starting at once from migrating together.
	MigrationLock func(ctx context.Context, db *sql.DB, fn func() error) error
	// Poll is how often WaitRoutingChange re-reads the routing version
	// without being signalled.
	Poll time.Duration
}

func (d Dialect) lockName(ctx context.Context, tx *sql.Tx, name string) error {
	if d.LockName == nil {
		return nil
	}
	return d.LockName(ctx, tx, name)
}

var _ store.Store = (*DB)(nil)

// DB is a store.Store on database/sql. It is safe for concurrent use.
type DB struct {
	d Dialect
	w *sql.DB // writes (and reads inside them)
	r *sql.DB // reads; may be w

	sigMu sync.Mutex    // protects sig
	sig   chan struct{} // closed (and replaced) after every committed write and every Signal
}

// New brings the schema up to date and returns the store. w runs every
// write transaction; r serves reads outside them (it may be w). Close closes
// both.
func New(ctx context.Context, d Dialect, w, r *sql.DB) (*DB, error) {
	if d.Poll <= 0 {
		d.Poll = time.Second
	}
	db := &DB{d: d, w: w, r: r, sig: make(chan struct{})}
	migrateAll := func() error { return db.migrate(ctx) }
	var err error
	if d.MigrationLock != nil {
		err = d.MigrationLock(ctx, w, migrateAll)
	} else {
		err = migrateAll()
	}
	if err != nil {
		return nil, err
	}
	return db, nil
}

// Close closes the connections.
func (db *DB) Close() error {
	var errs []error
	if db.r != db.w {
		errs = append(errs, db.r.Close())
	}
	errs = append(errs, db.w.Close())
	return errors.Join(errs...)
}

// migrate applies the dialect's migrations that the database has not seen.
func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at BIGINT  NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	names, err := fs.Glob(db.d.Migrations, "*.sql")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	type mig struct {
		version int
		name    string
	}
	var ms []mig
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return fmt.Errorf("migrate: %s: name must start with a positive number and '_'", base)
		}
		if len(ms) > 0 && ms[len(ms)-1].version == v {
			return fmt.Errorf("migrate: two migrations numbered %d", v)
		}
		ms = append(ms, mig{v, n})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })

	var newest sql.NullInt64
	if err := db.w.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if len(ms) > 0 && newest.Valid && newest.Int64 > int64(ms[len(ms)-1].version) {
		return fmt.Errorf("database schema version %d is newer than this plumbline knows (%d); upgrade plumbline",
			newest.Int64, ms[len(ms)-1].version)
	}
	for _, m := range ms {
		body, err := fs.ReadFile(db.d.Migrations, m.name)
		if err != nil {
			return fmt.Errorf("migrate %s: %w", m.name, err)
		}
		err = inTx(ctx, db.w, func(tx *sql.Tx) error {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM schema_migrations WHERE version = $1`, m.version).Scan(&one)
			if err == nil {
				return nil // applied already (maybe by another process just now)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, path.Base(m.name), time.Now().UnixNano())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", m.name, err)
		}
	}
	return nil
}

// inTx runs fn in a transaction on db and commits it. fn's error is returned
// as is, after a rollback.
func inTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// write runs fn in a write transaction and, once it committed, wakes the
// waiters of WaitRoutingChange.
func (db *DB) write(ctx context.Context, fn func(*sql.Tx) error) error {
	err := inTx(ctx, db.w, fn)
	if err == nil {
		db.Signal()
	}
	if err != nil && db.d.IsNoSpace != nil && db.d.IsNoSpace(err) {
		return fmt.Errorf("%w: %w", store.ErrNoSpace, err)
	}
	return err
}

// nanos and fromNanos convert times to and from their stored form.
func nanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// stamp is t normalised as the store returns it, or now when t is zero.
func stamp(t, now time.Time) time.Time {
	if t.IsZero() {
		t = now
	}
	return fromNanos(nanos(t))
}

// scanner is a row: *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// rowsQuerier is a *sql.DB or a *sql.Tx.
type rowsQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryAll runs a read and scans every row with scan; what names the list
// in errors ("list endpoints").
func queryAll[T any](ctx context.Context, db rowsQuerier, what string, scan func(scanner) (T, error), q string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
