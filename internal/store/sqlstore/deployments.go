package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/plumbline/plumbline/internal/store"
)

const deploymentCols = `endpoint, name, spec, state, reason, generation, observed_generation, created_at, updated_at`

func scanDeployment(s scanner) (store.Deployment, error) {
	var (
		d                store.Deployment
		spec             sql.NullString
		created, updated int64
	)
	err := s.Scan(&d.Endpoint, &d.Name, &spec, &d.State, &d.Reason, &d.Generation, &d.ObservedGeneration, &created, &updated)
	if err != nil {
		return d, err
	}
	d.Spec = rawOut(spec)
	d.CreatedAt, d.UpdatedAt = fromNanos(created), fromNanos(updated)
	return d, nil
}

// CreateDeployment implements store.Store. A zero Generation becomes 1; zero
// times become now.
func (db *DB) CreateDeployment(ctx context.Context, d store.Deployment) (store.Deployment, error) {
	now := time.Now()
	d.CreatedAt = stamp(d.CreatedAt, now)
	d.UpdatedAt = stamp(d.UpdatedAt, now)
	if d.Generation == 0 {
		d.Generation = 1
	}
	spec, err := rawIn(d.Spec)
	if err != nil {
		return store.Deployment{}, fmt.Errorf("create deployment %s/%s: spec: %w", d.Endpoint, d.Name, err)
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		if _, err := getEndpoint(ctx, tx, d.Endpoint, ""); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO deployments (`+deploymentCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			d.Endpoint, d.Name, spec, d.State, d.Reason, d.Generation, d.ObservedGeneration, nanos(d.CreatedAt), nanos(d.UpdatedAt))
		switch {
		case db.d.IsUnique(err):
			return fmt.Errorf("deployment %s: %w", d.Name, store.ErrExists)
		case db.d.IsForeignKey(err):
			return fmt.Errorf("endpoint %s: %w", d.Endpoint, store.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return store.Deployment{}, fmt.Errorf("create deployment %s/%s: %w", d.Endpoint, d.Name, err)
	}
	return d, nil
}

// GetDeployment implements store.Store.
func (db *DB) GetDeployment(ctx context.Context, endpoint, name string) (store.Deployment, error) {
	return getDeployment(ctx, db.r, endpoint, name, "")
}

func getDeployment(ctx context.Context, q querier, endpoint, name, lock string) (store.Deployment, error) {
	d, err := scanDeployment(q.QueryRowContext(ctx,
		`SELECT `+deploymentCols+` FROM deployments WHERE endpoint = $1 AND name = $2`+lock, endpoint, name))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("deployment %s/%s: %w", endpoint, name, store.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("get deployment %s/%s: %w", endpoint, name, err)
	}
	return d, nil
}

// ListDeployments implements store.Store, by endpoint and name.
func (db *DB) ListDeployments(ctx context.Context, endpoint string) ([]store.Deployment, error) {
	return queryAll(ctx, db.r, "list deployments", scanDeployment, `SELECT `+deploymentCols+` FROM deployments
		WHERE $1 = '' OR endpoint = $2 ORDER BY endpoint, name`, endpoint, endpoint)
}

// UpdateDeployment implements store.Store. Endpoint, Name and CreatedAt
// cannot change; UpdatedAt becomes now; Generation is incremented when fn
// changed Spec and did not set Generation itself.
func (db *DB) UpdateDeployment(ctx context.Context, endpoint, name string, fn func(*store.Deployment) error) (store.Deployment, error) {
	return db.updateDeployment(ctx, endpoint, name, false, func(_ *store.Endpoint, d *store.Deployment) error { return fn(d) })
}

// UpdateDeploymentWithEndpoint implements store.Store: UpdateDeployment
// whose fn also sees the deployment's endpoint, read and locked in the same
// transaction first (the order UpdateEndpointWithDeployments takes too, so
// the two never deadlock and never interleave).
func (db *DB) UpdateDeploymentWithEndpoint(ctx context.Context, endpoint, name string, fn func(*store.Endpoint, *store.Deployment) error) (store.Deployment, error) {
	return db.updateDeployment(ctx, endpoint, name, true, fn)
}

// updateDeployment is the read-modify-write of a deployment, its row locked
// (the dialect's FOR UPDATE); with withEndpoint, its endpoint's row is
// locked and read first and given to fn (nil otherwise).
func (db *DB) updateDeployment(ctx context.Context, endpoint, name string, withEndpoint bool, fn func(*store.Endpoint, *store.Deployment) error) (store.Deployment, error) {
	var out store.Deployment
	var fnErr error
	err := db.write(ctx, func(tx *sql.Tx) error {
		var ep *store.Endpoint
		if withEndpoint {
			e, err := getEndpoint(ctx, tx, endpoint, db.d.ForUpdate)
			if err != nil {
				return err
			}
			ep = &e
		}
		old, err := getDeployment(ctx, tx, endpoint, name, db.d.ForUpdate)
		if err != nil {
			return err
		}
		d := old
		d.Spec = bytes.Clone(old.Spec)
		if err := fn(ep, &d); err != nil {
			fnErr = err
			return err
		}
		d.Endpoint, d.Name, d.CreatedAt = old.Endpoint, old.Name, old.CreatedAt
		d.UpdatedAt = stamp(time.Time{}, time.Now())
		if d.Generation == old.Generation && !jsonEqual(old.Spec, d.Spec) {
			d.Generation++
		}
		spec, err := rawIn(d.Spec)
		if err != nil {
			return fmt.Errorf("spec: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deployments SET spec = $1, state = $2, reason = $3, generation = $4,
			observed_generation = $5, updated_at = $6 WHERE endpoint = $7 AND name = $8`,
			spec, d.State, d.Reason, d.Generation, d.ObservedGeneration, nanos(d.UpdatedAt), endpoint, name); err != nil {
			return err
		}
		out = d
		return nil
	})
	if fnErr != nil {
		return store.Deployment{}, fnErr
	}
	if err != nil {
		return store.Deployment{}, fmt.Errorf("update deployment %s/%s: %w", endpoint, name, err)
	}
	return out, nil
}

// DeleteDeployment implements store.Store; its instances go with it, its
// events stay until the endpoint is deleted.
func (db *DB) DeleteDeployment(ctx context.Context, endpoint, name string) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		return deleted(tx.ExecContext(ctx, `DELETE FROM deployments WHERE endpoint = $1 AND name = $2`, endpoint, name))
	})
	if err != nil {
		return fmt.Errorf("delete deployment %s/%s: %w", endpoint, name, err)
	}
	return nil
}

const instanceCols = `endpoint, deployment, name, driver, data, created_at, updated_at,
	instance_id, addr, template, state, routable, scoring_path, openapi_path, max_concurrent,
	restarts, last_probe, last_probe_at, pid, started_at`

// PutInstance implements store.Store. The first put sets CreatedAt (now when
// zero); a replacing put keeps it. UpdatedAt becomes now. ErrNotFound when
// the deployment does not exist.
func (db *DB) PutInstance(ctx context.Context, in store.Instance) error {
	data, err := rawIn(in.Data)
	if err != nil {
		return fmt.Errorf("put instance %s/%s/%s: data: %w", in.Endpoint, in.Deployment, in.Name, err)
	}
	now := time.Now()
	created := stamp(in.CreatedAt, now)
	err = db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO instances (`+instanceCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
			ON CONFLICT (endpoint, deployment, name) DO UPDATE SET
				driver = excluded.driver, data = excluded.data, updated_at = excluded.updated_at,
				instance_id = excluded.instance_id, addr = excluded.addr, template = excluded.template,
				state = excluded.state, routable = excluded.routable, scoring_path = excluded.scoring_path,
				openapi_path = excluded.openapi_path, max_concurrent = excluded.max_concurrent,
				restarts = excluded.restarts, last_probe = excluded.last_probe,
				last_probe_at = excluded.last_probe_at, pid = excluded.pid, started_at = excluded.started_at`,
			in.Endpoint, in.Deployment, in.Name, in.Driver, data, nanos(created), nanos(now),
			in.ID, in.Addr, in.Template, in.State, b2i(in.Routable), in.ScoringPath, in.OpenAPIPath, in.MaxConcurrent,
			in.Restarts, in.LastProbe, zeroNanos(in.LastProbeAt), in.PID, zeroNanos(in.StartedAt))
		if db.d.IsForeignKey(err) {
			return fmt.Errorf("deployment %s/%s: %w", in.Endpoint, in.Deployment, store.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("put instance %s/%s/%s: %w", in.Endpoint, in.Deployment, in.Name, err)
	}
	return nil
}

// zeroNanos stores a zero time as 0, so that it comes back zero.
func zeroNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return nanos(t)
}

func zeroFromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return fromNanos(n)
}

// ListInstances implements store.Store, by endpoint, deployment and name. An
// empty endpoint or deployment matches all.
func (db *DB) ListInstances(ctx context.Context, endpoint, deployment string) ([]store.Instance, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+instanceCols+` FROM instances
		WHERE ($1 = '' OR endpoint = $1) AND ($2 = '' OR deployment = $2)
		ORDER BY endpoint, deployment, name`, endpoint, deployment)
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	defer rows.Close()
	var out []store.Instance
	for rows.Next() {
		var (
			in                            store.Instance
			data                          sql.NullString
			created, updated, probe, strt int64
		)
		if err := rows.Scan(&in.Endpoint, &in.Deployment, &in.Name, &in.Driver, &data, &created, &updated,
			&in.ID, &in.Addr, &in.Template, &in.State, &in.Routable, &in.ScoringPath, &in.OpenAPIPath, &in.MaxConcurrent,
			&in.Restarts, &in.LastProbe, &probe, &in.PID, &strt); err != nil {
			return nil, fmt.Errorf("list instances: %w", err)
		}
		in.Data = rawOut(data)
		in.CreatedAt, in.UpdatedAt = fromNanos(created), fromNanos(updated)
		in.LastProbeAt, in.StartedAt = zeroFromNanos(probe), zeroFromNanos(strt)
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	return out, nil
}

// DeleteInstance implements store.Store.
func (db *DB) DeleteInstance(ctx context.Context, endpoint, deployment, name string) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		return deleted(tx.ExecContext(ctx, `DELETE FROM instances WHERE endpoint = $1 AND deployment = $2 AND name = $3`,
			endpoint, deployment, name))
	})
	if err != nil {
		return fmt.Errorf("delete instance %s/%s/%s: %w", endpoint, deployment, name, err)
	}
	return nil
}
