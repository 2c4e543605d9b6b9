package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/plumbline/plumbline/internal/store"
)

// RoutingVersion implements store.Store: triggers on endpoints, deployments
// and instances increment counters.routing in the writing transaction
// (migration 2 of each dialect).
func (db *DB) RoutingVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := db.r.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'routing'`).Scan(&v); err != nil {
		return 0, fmt.Errorf("routing version: %w", err)
	}
	return v, nil
}

// WaitRoutingChange implements store.Store. This process's commits wake it
// at once, other processes' through Signal (PostgreSQL's NOTIFY), and it
// re-reads the counter every Dialect.Poll in case a signal was missed.
func (db *DB) WaitRoutingChange(ctx context.Context, after int64) (int64, error) {
	t := time.NewTicker(db.d.Poll)
	defer t.Stop()
	for {
		changed := db.changed() // before the read: a commit after it wakes us
		v, err := db.RoutingVersion(ctx)
		if err != nil {
			return 0, err
		}
		if v > after {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-changed:
		case <-t.C:
		}
	}
}

// changed returns a channel closed at the next commit of a write.
func (db *DB) changed() <-chan struct{} {
	db.sigMu.Lock()
	defer db.sigMu.Unlock()
	return db.sig
}

// Signal wakes every WaitRoutingChange, which re-reads the routing version.
// A dialect calls it when another process committed a change (NOTIFY).
func (db *DB) Signal() {
	db.sigMu.Lock()
	close(db.sig)
	db.sig = make(chan struct{})
	db.sigMu.Unlock()
}

// PutGatewayReport implements store.Store.
func (db *DB) PutGatewayReport(ctx context.Context, r store.GatewayReport) error {
	b, err := json.Marshal(r.Instances)
	if err != nil {
		return fmt.Errorf("put gateway report %s: %w", r.ID, err)
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO gateway_reports (id, addr, instances, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO UPDATE SET addr = excluded.addr, instances = excluded.instances, updated_at = excluded.updated_at`,
			r.ID, r.Addr, string(b), nanos(time.Now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("put gateway report %s: %w", r.ID, err)
	}
	return nil
}

// ListGatewayReports implements store.Store.
func (db *DB) ListGatewayReports(ctx context.Context, since time.Time) ([]store.GatewayReport, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, addr, instances, updated_at FROM gateway_reports
		WHERE updated_at >= $1 ORDER BY id`, zeroNanos(since))
	if err != nil {
		return nil, fmt.Errorf("list gateway reports: %w", err)
	}
	defer rows.Close()
	var out []store.GatewayReport
	for rows.Next() {
		var (
			r       store.GatewayReport
			ins     sql.NullString
			updated int64
		)
		if err := rows.Scan(&r.ID, &r.Addr, &ins, &updated); err != nil {
			return nil, fmt.Errorf("list gateway reports: %w", err)
		}
		if ins.Valid && ins.String != "" && ins.String != "null" {
			if err := json.Unmarshal([]byte(ins.String), &r.Instances); err != nil {
				return nil, fmt.Errorf("list gateway reports: %s: %w", r.ID, err)
			}
		}
		r.UpdatedAt = fromNanos(updated)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list gateway reports: %w", err)
	}
	return out, nil
}

// DeleteGatewayReport implements store.Store.
func (db *DB) DeleteGatewayReport(ctx context.Context, id string) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		return deleted(tx.ExecContext(ctx, `DELETE FROM gateway_reports WHERE id = $1`, id))
	})
	if err != nil {
		return fmt.Errorf("delete gateway report %s: %w", id, err)
	}
	return nil
}

// AcquireLease implements store.Store.
func (db *DB) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (store.Lease, error) {
	var out store.Lease
	err := db.write(ctx, func(tx *sql.Tx) error {
		now := time.Now()
		// A new lease starts expired with token 0; concurrent first
		// campaigns then queue on its row.
		if _, err := tx.ExecContext(ctx, `INSERT INTO leases (name, holder, token, expires_at) VALUES ($1, '', 0, 0)
			ON CONFLICT (name) DO NOTHING`, name); err != nil {
			return err
		}
		var cur store.Lease
		var exp int64
		err := tx.QueryRowContext(ctx, `SELECT name, holder, token, expires_at FROM leases WHERE name = $1`+db.d.ForUpdate, name).
			Scan(&cur.Name, &cur.Holder, &cur.Token, &exp)
		if err != nil {
			return err
		}
		cur.ExpiresAt = fromNanos(exp)
		expired := !now.Before(cur.ExpiresAt)
		if cur.Holder != holder && !expired {
			out = cur
			return store.ErrLeaseHeld
		}
		out = store.Lease{Name: name, Holder: holder, Token: cur.Token, ExpiresAt: fromNanos(nanos(now.Add(ttl)))}
		if cur.Holder != holder || expired {
			out.Token++
		}
		_, err = tx.ExecContext(ctx, `UPDATE leases SET holder = $1, token = $2, expires_at = $3 WHERE name = $4`,
			holder, out.Token, nanos(out.ExpiresAt), name)
		return err
	})
	if err != nil {
		return out, fmt.Errorf("acquire lease %s for %s: %w", name, holder, err)
	}
	return out, nil
}

// CheckLease implements store.Store.
func (db *DB) CheckLease(ctx context.Context, l store.Lease) error {
	var holder string
	var token, exp int64
	err := db.r.QueryRowContext(ctx, `SELECT holder, token, expires_at FROM leases WHERE name = $1`, l.Name).Scan(&holder, &token, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("lease %s: %w", l.Name, store.ErrFenced)
	}
	if err != nil {
		return fmt.Errorf("check lease %s: %w", l.Name, err)
	}
	if holder != l.Holder || token != l.Token || !time.Now().Before(fromNanos(exp)) {
		return fmt.Errorf("lease %s (token %d): %w", l.Name, l.Token, store.ErrFenced)
	}
	return nil
}

// ReleaseLease implements store.Store.
func (db *DB) ReleaseLease(ctx context.Context, l store.Lease) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE leases SET expires_at = $1 WHERE name = $2 AND holder = $3 AND token = $4`,
			nanos(time.Now()), l.Name, l.Holder, l.Token)
		return err
	})
	if err != nil {
		return fmt.Errorf("release lease %s: %w", l.Name, err)
	}
	return nil
}
