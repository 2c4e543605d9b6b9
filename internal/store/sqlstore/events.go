package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/plumbline/plumbline/internal/store"
)

// AppendEvent implements store.Store. ErrNotFound when the endpoint does not
// exist.
func (db *DB) AppendEvent(ctx context.Context, ev store.Event) (store.Event, error) {
	ev.Time = stamp(ev.Time, time.Now())
	err := db.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO events (time, endpoint, deployment, instance, type, reason, message)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
			nanos(ev.Time), ev.Endpoint, ev.Deployment, ev.Instance, ev.Type, ev.Reason, ev.Message).Scan(&ev.ID)
		if db.d.IsForeignKey(err) {
			return fmt.Errorf("endpoint %s: %w", ev.Endpoint, store.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return store.Event{}, fmt.Errorf("append event %s %s: %w", ev.Endpoint, ev.Reason, err)
	}
	return ev, nil
}

// ListEvents implements store.Store, oldest first.
func (db *DB) ListEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	q := `SELECT id, time, endpoint, deployment, instance, type, reason, message FROM events WHERE id > $1`
	args := []any{f.AfterID}
	for _, c := range []struct{ col, val string }{
		{"endpoint", f.Endpoint}, {"deployment", f.Deployment}, {"instance", f.Instance},
	} {
		if c.val != "" {
			args = append(args, c.val)
			q += ` AND ` + c.col + ` = ` + param(len(args))
		}
	}
	newestFirst := f.Limit > 0 && f.AfterID == 0
	switch {
	case newestFirst:
		args = append(args, f.Limit)
		q += ` ORDER BY id DESC LIMIT ` + param(len(args))
	case f.Limit > 0: // paging forward from AfterID
		args = append(args, f.Limit)
		q += ` ORDER BY id LIMIT ` + param(len(args))
	default:
		q += ` ORDER BY id`
	}
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		var (
			ev store.Event
			t  int64
		)
		if err := rows.Scan(&ev.ID, &t, &ev.Endpoint, &ev.Deployment, &ev.Instance, &ev.Type, &ev.Reason, &ev.Message); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		ev.Time = fromNanos(t)
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	if newestFirst {
		slices.Reverse(out)
	}
	return out, nil
}

// GetSetting implements store.Store.
func (db *DB) GetSetting(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := db.r.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("setting %s: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get setting %s: %w", key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// PutSetting implements store.Store.
func (db *DB) PutSetting(ctx context.Context, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES ($1, $2)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
		return err
	})
	if err != nil {
		return fmt.Errorf("put setting %s: %w", key, err)
	}
	return nil
}
