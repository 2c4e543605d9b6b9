// Package sqlite is the embedded implementation of store.Store on SQLite,
// through the pure-Go driver modernc.org/sqlite (no cgo). The queries and
// rules are store/sqlstore's; this package gives the connections, the
// schema (migrations/*.sql) and SQLite's error codes.
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
// umask. This package must not import anything from plumbline but store and
// store/sqlstore.
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
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/plumbline/plumbline/internal/store"
	"github.com/plumbline/plumbline/internal/store/sqlstore"
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

// crossProcessPoll is how often a routing-version wait re-reads the
// counter, for changes another process commits to the same file (this
// process's own commits wake waiters at once).
const crossProcessPoll = 500 * time.Millisecond

// DB is a store.Store on one SQLite file. It is safe for concurrent use.
type DB struct {
	*sqlstore.DB
	path string
	w, r *sql.DB // the writer connection and the query-only pool
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

	w, err := sql.Open("sqlite", abs+"?"+common+"&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	r, err := sql.Open("sqlite", abs+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	r.SetMaxOpenConns(readConns)
	r.SetMaxIdleConns(readConns)
	schema, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	db, err := sqlstore.New(ctx, sqlstore.Dialect{
		Name:         "sqlite",
		Migrations:   schema,
		IsUnique:     isUnique,
		IsForeignKey: isForeignKey,
		IsNoSpace:    isNoSpace,
		Poll:         crossProcessPoll,
	}, w, r)
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	// SQLite gives -wal and -shm the database file's mode; make sure.
	for _, p := range []string{abs + "-wal", abs + "-shm"} {
		if err := os.Chmod(p, fileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			db.Close()
			return nil, fmt.Errorf("open store %s: %w", abs, err)
		}
	}
	if err := r.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	return &DB{DB: db, path: abs, w: w, r: r}, nil
}

// Path is the database file.
func (db *DB) Path() string { return db.path }

// Close closes both pools.
func (db *DB) Close() error {
	if err := db.DB.Close(); err != nil {
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

// isNoSpace: SQLITE_FULL (or an extended code of it), the disk is full.
func isNoSpace(err error) bool { return sqliteCode(err)&0xff == sqlite3.SQLITE_FULL }

func isForeignKey(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}
