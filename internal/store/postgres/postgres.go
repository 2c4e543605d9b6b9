// Package postgres is store.Store on PostgreSQL, through pgx
// (github.com/jackc/pgx/v5), for replicas that share state: several
// gateways and control replicas on one database. The queries and rules are
// store/sqlstore's, the same as SQLite's; this package gives the
// connections, the schema (migrations/*.sql, applied under an advisory lock
// so replicas starting together do not race), PostgreSQL's error codes, row
// locks for read-modify-writes, and LISTEN/NOTIFY: every committed change
// of endpoints, deployments or instances notifies plumbline_routing, and a
// listening connection wakes WaitRoutingChange within milliseconds.
//
// This package must not import anything from plumbline but store and
// store/sqlstore.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/plumbline/plumbline/internal/store"
	"github.com/plumbline/plumbline/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Channel is the NOTIFY channel a routing change is announced on.
const Channel = "plumbline_routing"

// Lock keys for pg_advisory_lock: plumbline's migrations.
const migrationLockKey = 0x706c756d62 // "plumb"

// Defaults.
const (
	// maxConns bounds the connection pool (one more is the listener).
	maxConns = 10
	// poll is how often a routing-version wait re-reads the counter in case
	// a notification was lost (the listener reconnecting).
	poll = time.Second
)

var _ store.Store = (*DB)(nil)

// DB is a store.Store on PostgreSQL. It is safe for concurrent use.
type DB struct {
	*sqlstore.DB
	stop   context.CancelFunc
	listen chan struct{} // closed when the listener has returned
}

// Open connects to the database at url (postgres://user:pass@host:port/db
// or a key=value DSN; pgx reads PG* variables too), brings its schema up to
// date and starts listening for changes. logger receives the listener's
// reconnections (nil: discarded).
func Open(ctx context.Context, url string, logger *slog.Logger) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", Redact(url), err)
	}
	sqldb := stdlib.OpenDB(*cfg)
	sqldb.SetMaxOpenConns(maxConns)
	sqldb.SetMaxIdleConns(maxConns)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	if err := sqldb.PingContext(ctx); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("open store %s: %w", Redact(url), err)
	}
	schema, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	inner, err := sqlstore.New(ctx, sqlstore.Dialect{
		Name:          "postgres",
		Migrations:    schema,
		IsUnique:      func(err error) bool { return code(err) == "23505" },
		IsForeignKey:  func(err error) bool { return code(err) == "23503" },
		IsNoSpace:     func(err error) bool { return code(err) == "53100" }, // disk_full
		ForUpdate:     " FOR UPDATE",
		LockName:      lockName,
		MigrationLock: migrationLock,
		Poll:          poll,
	}, sqldb, sqldb)
	if err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("open store %s: %w", Redact(url), err)
	}
	lctx, stop := context.WithCancel(context.Background())
	db := &DB{DB: inner, stop: stop, listen: make(chan struct{})}
	go db.listenLoop(lctx, cfg, logger)
	return db, nil
}

// Close stops listening and closes the pool.
func (db *DB) Close() error {
	db.stop()
	<-db.listen
	return db.DB.Close()
}

// listenLoop keeps one connection LISTENing on Channel and signals the
// store on every notification, reconnecting with capped backoff.
func (db *DB) listenLoop(ctx context.Context, cfg *pgx.ConnConfig, log *slog.Logger) {
	defer close(db.listen)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := db.listenOnce(ctx, cfg)
		if ctx.Err() != nil {
			return
		}
		log.Warn("postgres: change listener lost its connection; reconnecting", "err", err, "in", backoff)
		db.Signal() // something may have changed meanwhile
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (db *DB) listenOnce(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return err
	}
	db.Signal() // changes before LISTEN took effect are read now
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		db.Signal()
	}
}

// lockName serialises transactions on name until the transaction ends.
func lockName(ctx context.Context, tx *sql.Tx, name string) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, name)
	return err
}

// migrationLock runs fn holding a session advisory lock on one connection.
func migrationLock(ctx context.Context, db *sql.DB, fn func() error) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		return fmt.Errorf("migrate: take the migration lock: %w", err)
	}
	defer conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, migrationLockKey)
	return fn()
}

func code(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// Redact returns url without its password, for messages and logs.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
