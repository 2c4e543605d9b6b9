package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"time"

	"github.com/plumbline/plumbline/internal/store"
)

const endpointCols = `name, spec, auth_mode, primary_key, secondary_key, traffic, mirror, state, reason, generation, created_at, updated_at, uid, token_generation`

func scanEndpoint(s scanner) (store.Endpoint, error) {
	var (
		e                store.Endpoint
		spec, tr, mir    sql.NullString
		created, updated int64
	)
	err := s.Scan(&e.Name, &spec, &e.AuthMode, &e.PrimaryKey, &e.SecondaryKey, &tr, &mir,
		&e.State, &e.Reason, &e.Generation, &created, &updated, &e.ID, &e.TokenGeneration)
	if err != nil {
		return e, err
	}
	e.Spec = rawOut(spec)
	if err := jsonOut(tr, &e.Traffic); err != nil {
		return e, fmt.Errorf("endpoint %s traffic: %w", e.Name, err)
	}
	if err := jsonOut(mir, &e.Mirror); err != nil {
		return e, fmt.Errorf("endpoint %s mirror: %w", e.Name, err)
	}
	e.CreatedAt, e.UpdatedAt = fromNanos(created), fromNanos(updated)
	return e, nil
}

func endpointArgs(e *store.Endpoint) ([]any, error) {
	spec, err := rawIn(e.Spec)
	if err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	tr, err := jsonIn(e.Traffic)
	if err != nil {
		return nil, fmt.Errorf("traffic: %w", err)
	}
	mir, err := jsonIn(e.Mirror)
	if err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	return []any{e.Name, spec, e.AuthMode, e.PrimaryKey, e.SecondaryKey, tr, mir,
		e.State, e.Reason, e.Generation, nanos(e.CreatedAt), nanos(e.UpdatedAt), e.ID, e.TokenGeneration}, nil
}

// CreateEndpoint implements store.Store. A zero Generation becomes 1; zero
// times become now; an empty ID becomes a new random one.
func (db *DB) CreateEndpoint(ctx context.Context, e store.Endpoint) (store.Endpoint, error) {
	now := time.Now()
	if e.ID == "" {
		e.ID = store.NewEndpointID()
	}
	e.CreatedAt = stamp(e.CreatedAt, now)
	e.UpdatedAt = stamp(e.UpdatedAt, now)
	if e.Generation == 0 {
		e.Generation = 1
	}
	args, err := endpointArgs(&e)
	if err != nil {
		return store.Endpoint{}, fmt.Errorf("create endpoint %s: %w", e.Name, err)
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO endpoints (`+endpointCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`, args...)
		if db.d.IsUnique(err) {
			return store.ErrExists
		}
		return err
	})
	if err != nil {
		return store.Endpoint{}, fmt.Errorf("create endpoint %s: %w", e.Name, err)
	}
	return e, nil
}

// GetEndpoint implements store.Store.
func (db *DB) GetEndpoint(ctx context.Context, name string) (store.Endpoint, error) {
	return getEndpoint(ctx, db.r, name, "")
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// getEndpoint reads one endpoint; lock is appended to the query (the
// dialect's FOR UPDATE in a read-modify-write).
func getEndpoint(ctx context.Context, q querier, name, lock string) (store.Endpoint, error) {
	e, err := scanEndpoint(q.QueryRowContext(ctx, `SELECT `+endpointCols+` FROM endpoints WHERE name = $1`+lock, name))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("endpoint %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("get endpoint %s: %w", name, err)
	}
	return e, nil
}

// ListEndpoints implements store.Store, by name.
func (db *DB) ListEndpoints(ctx context.Context) ([]store.Endpoint, error) {
	return queryAll(ctx, db.r, "list endpoints", scanEndpoint, `SELECT `+endpointCols+` FROM endpoints ORDER BY name`)
}

// UpdateEndpoint implements store.Store. Name and CreatedAt cannot change;
// UpdatedAt becomes now; Generation is incremented when fn changed anything
// but State and Reason and did not set Generation itself.
func (db *DB) UpdateEndpoint(ctx context.Context, name string, fn func(*store.Endpoint) error) (store.Endpoint, error) {
	return db.updateEndpoint(ctx, name, func(_ *sql.Tx, e *store.Endpoint) error { return fn(e) })
}

// UpdateEndpointWithDeployments implements store.Store: UpdateEndpoint
// whose fn also sees the endpoint's deployments, read in the same
// transaction after the endpoint's row is locked.
func (db *DB) UpdateEndpointWithDeployments(ctx context.Context, name string, fn func(*store.Endpoint, []store.Deployment) error) (store.Endpoint, error) {
	return db.updateEndpoint(ctx, name, func(tx *sql.Tx, e *store.Endpoint) error {
		deps, err := queryAll(ctx, tx, "list deployments", scanDeployment,
			`SELECT `+deploymentCols+` FROM deployments WHERE endpoint = $1 ORDER BY name`, name)
		if err != nil {
			return storeErr{err}
		}
		return fn(e, deps)
	})
}

// storeErr marks an error of the store inside an update's fn, so that it is
// not returned as the fn's own.
type storeErr struct{ error }

func (e storeErr) Unwrap() error { return e.error }

// updateEndpoint is the read-modify-write of an endpoint, its row locked
// (the dialect's FOR UPDATE). fn's own errors come back as they are.
func (db *DB) updateEndpoint(ctx context.Context, name string, fn func(*sql.Tx, *store.Endpoint) error) (store.Endpoint, error) {
	var out store.Endpoint
	var fnErr error
	err := db.write(ctx, func(tx *sql.Tx) error {
		old, err := getEndpoint(ctx, tx, name, db.d.ForUpdate)
		if err != nil {
			return err
		}
		e := old
		e.Spec = bytes.Clone(old.Spec)
		e.Traffic, e.Mirror = maps.Clone(old.Traffic), maps.Clone(old.Mirror)
		if err := fn(tx, &e); err != nil {
			if se, ok := err.(storeErr); ok {
				return se.error
			}
			fnErr = err
			return err
		}
		e.Name, e.CreatedAt, e.ID = old.Name, old.CreatedAt, old.ID
		e.UpdatedAt = stamp(time.Time{}, time.Now())
		if e.Generation == old.Generation && endpointDesiredChanged(&old, &e) {
			e.Generation++
		}
		args, err := endpointArgs(&e)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE endpoints SET spec = $1, auth_mode = $2, primary_key = $3, secondary_key = $4,
			traffic = $5, mirror = $6, state = $7, reason = $8, generation = $9, updated_at = $10, token_generation = $11 WHERE name = $12`,
			append(args[1:10:10], args[11], args[13], name)...); err != nil {
			return err
		}
		out = e
		return nil
	})
	if fnErr != nil {
		return store.Endpoint{}, fnErr
	}
	if err != nil {
		return store.Endpoint{}, fmt.Errorf("update endpoint %s: %w", name, err)
	}
	return out, nil
}

func endpointDesiredChanged(a, b *store.Endpoint) bool {
	return !jsonEqual(a.Spec, b.Spec) || a.AuthMode != b.AuthMode ||
		a.PrimaryKey != b.PrimaryKey || a.SecondaryKey != b.SecondaryKey ||
		!maps.Equal(a.Traffic, b.Traffic) || !maps.Equal(a.Mirror, b.Mirror) ||
		a.TokenGeneration != b.TokenGeneration
}

// jsonEqual compares two documents by value, so re-encoding a spec does not
// count as a change.
func jsonEqual(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// DeleteEndpoint implements store.Store; deployments, instances and events
// go with it (ON DELETE CASCADE).
func (db *DB) DeleteEndpoint(ctx context.Context, name string) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		return deleted(tx.ExecContext(ctx, `DELETE FROM endpoints WHERE name = $1`, name))
	})
	if err != nil {
		return fmt.Errorf("delete endpoint %s: %w", name, err)
	}
	return nil
}

// deleted turns "no row affected" into ErrNotFound.
func deleted(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}
