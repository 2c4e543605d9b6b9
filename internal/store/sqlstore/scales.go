package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/plumbline/plumbline/internal/store"
)

const scaleCols = `endpoint, deployment, desired, decided_at, decision, panic, utilization,
	prewarm_instances, prewarm_until, updated_at`

func scanScale(s scanner) (store.Scale, error) {
	var (
		sc                      store.Scale
		decided, until, updated int64
	)
	err := s.Scan(&sc.Endpoint, &sc.Deployment, &sc.Desired, &decided, &sc.Decision, &sc.Panic, &sc.Utilization,
		&sc.PrewarmInstances, &until, &updated)
	if err != nil {
		return sc, err
	}
	sc.DecidedAt, sc.PrewarmUntil, sc.UpdatedAt = zeroFromNanos(decided), zeroFromNanos(until), fromNanos(updated)
	return sc, nil
}

// GetScale implements store.Store.
func (db *DB) GetScale(ctx context.Context, endpoint, deployment string) (store.Scale, error) {
	return getScale(ctx, db.r, endpoint, deployment, "")
}

func getScale(ctx context.Context, q querier, endpoint, deployment, lock string) (store.Scale, error) {
	sc, err := scanScale(q.QueryRowContext(ctx,
		`SELECT `+scaleCols+` FROM deployment_scales WHERE endpoint = $1 AND deployment = $2`+lock, endpoint, deployment))
	if errors.Is(err, sql.ErrNoRows) {
		return sc, fmt.Errorf("scale of %s/%s: %w", endpoint, deployment, store.ErrNotFound)
	}
	if err != nil {
		return sc, fmt.Errorf("get scale of %s/%s: %w", endpoint, deployment, err)
	}
	return sc, nil
}

// ListScales implements store.Store, by endpoint and deployment.
func (db *DB) ListScales(ctx context.Context) ([]store.Scale, error) {
	return queryAll(ctx, db.r, "list scales", scanScale, `SELECT `+scaleCols+` FROM deployment_scales ORDER BY endpoint, deployment`)
}

// UpdateScale implements store.Store.
func (db *DB) UpdateScale(ctx context.Context, endpoint, deployment string, fn func(*store.Scale) error) (store.Scale, error) {
	var out store.Scale
	var fnErr error
	err := db.write(ctx, func(tx *sql.Tx) error {
		// The deployment's row lock (PostgreSQL) serialises two writers of
		// a scale that does not exist yet.
		if _, err := getDeployment(ctx, tx, endpoint, deployment, db.d.ForUpdate); err != nil {
			return err
		}
		sc, err := getScale(ctx, tx, endpoint, deployment, db.d.ForUpdate)
		if errors.Is(err, store.ErrNotFound) {
			sc, err = store.Scale{Endpoint: endpoint, Deployment: deployment}, nil
		}
		if err != nil {
			return err
		}
		if err := fn(&sc); err != nil {
			fnErr = err
			return err
		}
		sc.Endpoint, sc.Deployment = endpoint, deployment
		sc.UpdatedAt = stamp(time.Time{}, time.Now())
		_, err = tx.ExecContext(ctx, `INSERT INTO deployment_scales (`+scaleCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (endpoint, deployment) DO UPDATE SET
				desired = excluded.desired, decided_at = excluded.decided_at, decision = excluded.decision,
				panic = excluded.panic, utilization = excluded.utilization,
				prewarm_instances = excluded.prewarm_instances, prewarm_until = excluded.prewarm_until,
				updated_at = excluded.updated_at`,
			endpoint, deployment, sc.Desired, zeroNanos(sc.DecidedAt), sc.Decision, b2i(sc.Panic), sc.Utilization,
			sc.PrewarmInstances, zeroNanos(sc.PrewarmUntil), nanos(sc.UpdatedAt))
		if db.d.IsForeignKey(err) {
			return fmt.Errorf("deployment %s/%s: %w", endpoint, deployment, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		out = sc
		return nil
	})
	if fnErr != nil {
		return store.Scale{}, fnErr
	}
	if err != nil {
		return store.Scale{}, fmt.Errorf("update scale of %s/%s: %w", endpoint, deployment, err)
	}
	return out, nil
}
