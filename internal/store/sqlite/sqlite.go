// Package sqlite is the embedded implementation of store.Store on SQLite,
// through the pure-Go driver modernc.org/sqlite (no cgo).
//
// One file holds everything. It runs in WAL mode with foreign keys on and
// synchronous=NORMAL. Writes go through a single connection whose
// transactions begin IMMEDIATE, so writers in this process queue in Go
// instead of failing with SQLITE_BUSY, and a busy timeout covers other
// processes; reads use a separate pool of query-only connections, which WAL
// lets run alongside the writer. The schema lives in migrations/*.sql,
// embedded, applied in order, one transaction each, recorded in
// schema_migrations.
//
// The database file and its -wal and -shm companions are 0600 whatever the
// umask. This package must not import anything from plumbline but store.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/plumbline/plumbline/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

var _ store.Store = (*DB)(nil)

const (
	fileMode = 0o600
	// busyTimeout is how long a connection waits for a lock another process
	// holds before giving up with SQLITE_BUSY.
	busyTimeout = 10 * time.Second
	// readConns bounds the read pool.
	readConns = 4
)

// DB is a store.Store on one SQLite file. It is safe for concurrent use.
type DB struct {
	path string
	w    *sql.DB // one connection; every mutation runs here, BEGIN IMMEDIATE
	r    *sql.DB // query-only pool
}

// Open opens (creating if needed) the database at path and brings its
// schema up to date.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" || strings.Contains(path, "?") || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open store %q: want a plain file path (no '?', not :memory: or a file: URI)", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := createPrivate(abs); err != nil {
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	ms := int(busyTimeout / time.Millisecond)
	common := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)", ms)

	db := &DB{path: abs}
	db.w, err = sql.Open("sqlite", abs+"?"+common+"&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	db.w.SetMaxOpenConns(1)
	db.w.SetMaxIdleConns(1)
	db.w.SetConnMaxLifetime(0)
	db.w.SetConnMaxIdleTime(0)
	if err := db.w.PingContext(ctx); err != nil {
		db.w.Close()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	if err := migrate(ctx, db.w); err != nil {
		db.w.Close()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	// SQLite gives -wal and -shm the database file's mode; make sure.
	for _, p := range []string{abs + "-wal", abs + "-shm"} {
		if err := os.Chmod(p, fileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			db.w.Close()
			return nil, fmt.Errorf("open store %s: %w", abs, err)
		}
	}

	db.r, err = sql.Open("sqlite", abs+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		db.w.Close()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	db.r.SetMaxOpenConns(readConns)
	db.r.SetMaxIdleConns(readConns)
	if err := db.r.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	return db, nil
}

// Path is the database file.
func (db *DB) Path() string { return db.path }

// Close closes both pools.
func (db *DB) Close() error {
	var errs []error
	if db.r != nil {
		errs = append(errs, db.r.Close())
	}
	errs = append(errs, db.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close store %s: %w", db.path, err)
	}
	return nil
}

// createPrivate creates path if missing and makes it 0600 whatever the umask.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file")
	}
	if fi.Mode().Perm() != fileMode {
		return f.Chmod(fileMode)
	}
	return nil
}

// migrate applies the embedded migrations that the database has not seen,
// in order, one transaction each.
func migrate(ctx context.Context, w *sql.DB) error {
	if _, err := w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	type mig struct {
		version int
		name    string
	}
	var ms []mig
	for _, n := range names {
		base := filepath.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return fmt.Errorf("migrate: %s: name must start with a positive number and '_'", base)
		}
		if len(ms) > 0 && ms[len(ms)-1].version == v {
			return fmt.Errorf("migrate: two migrations numbered %d", v)
		}
		ms = append(ms, mig{v, base})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })

	var newest sql.NullInt64
	if err := w.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if len(ms) > 0 && newest.Valid && newest.Int64 > int64(ms[len(ms)-1].version) {
		return fmt.Errorf("database schema version %d is newer than this plumbline knows (%d); upgrade plumbline",
			newest.Int64, ms[len(ms)-1].version)
	}
	for _, m := range ms {
		body, err := migrations.ReadFile("migrations/" + m.name)
		if err != nil {
			return fmt.Errorf("migrate %s: %w", m.name, err)
		}
		err = inTx(ctx, w, func(tx *sql.Tx) error {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM schema_migrations WHERE version = ?`, m.version).Scan(&one)
			if err == nil {
				return nil // applied already (maybe by another process just now)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, time.Now().UnixNano())
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

// write runs fn in a write transaction.
func (db *DB) write(ctx context.Context, fn func(*sql.Tx) error) error {
	err := inTx(ctx, db.w, fn)
	if c := sqliteCode(err); c&0xff == sqlite3.SQLITE_FULL {
		return fmt.Errorf("%w: %w", store.ErrNoSpace, err)
	}
	return err
}

func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

func isUnique(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

func isForeignKey(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
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
