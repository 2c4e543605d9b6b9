package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/plumbline/plumbline/internal/store"
)

var _ store.Rollouts = (*DB)(nil)

const rolloutCols = `id, endpoint, deployment, plan, state, reason, step, step_started_at, epoch, baseline, baseline_mirror, data, created_at, updated_at, finished_at`

func scanRollout(s scanner) (store.Rollout, error) {
	var (
		r                       store.Rollout
		plan, base, mir, data   sql.NullString
		stepAt, created, upd, f int64
	)
	err := s.Scan(&r.ID, &r.Endpoint, &r.Deployment, &plan, &r.State, &r.Reason, &r.Step, &stepAt, &r.Epoch,
		&base, &mir, &data, &created, &upd, &f)
	if err != nil {
		return r, err
	}
	r.Plan, r.Data = rawOut(plan), rawOut(data)
	if err := jsonOut(base, &r.Baseline); err != nil {
		return r, fmt.Errorf("rollout %d baseline: %w", r.ID, err)
	}
	if err := jsonOut(mir, &r.BaselineMirror); err != nil {
		return r, fmt.Errorf("rollout %d baseline mirror: %w", r.ID, err)
	}
	r.StepStartedAt, r.CreatedAt, r.UpdatedAt, r.FinishedAt = zeroFromNanos(stepAt), fromNanos(created), fromNanos(upd), zeroFromNanos(f)
	return r, nil
}

// rolloutArgs are r's columns after id, in rolloutCols order.
func rolloutArgs(r *store.Rollout) ([]any, error) {
	plan, err := rawIn(r.Plan)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	data, err := rawIn(r.Data)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	base, err := jsonIn(r.Baseline)
	if err != nil {
		return nil, err
	}
	mir, err := jsonIn(r.BaselineMirror)
	if err != nil {
		return nil, err
	}
	return []any{r.Endpoint, r.Deployment, plan, r.State, r.Reason, r.Step, zeroNanos(r.StepStartedAt), r.Epoch,
		base, mir, data, nanos(r.CreatedAt), nanos(r.UpdatedAt), zeroNanos(r.FinishedAt)}, nil
}

// CreateRollout implements store.Rollouts.
func (db *DB) CreateRollout(ctx context.Context, r store.Rollout, fn func(*store.Rollout, *store.Endpoint) (*store.TrafficChange, error)) (store.Rollout, store.Endpoint, error) {
	now := time.Now()
	r.CreatedAt = stamp(r.CreatedAt, now)
	r.UpdatedAt = r.CreatedAt
	return db.rolloutTx(ctx, fmt.Sprintf("create rollout of %s/%s", r.Endpoint, r.Deployment), func(tx *sql.Tx) (*store.Rollout, error) {
		return &r, nil
	}, fn, true)
}

// UpdateRollout implements store.Rollouts.
func (db *DB) UpdateRollout(ctx context.Context, id int64, fn func(*store.Rollout, *store.Endpoint) (*store.TrafficChange, error)) (store.Rollout, store.Endpoint, error) {
	return db.rolloutTx(ctx, fmt.Sprintf("update rollout %d", id), func(tx *sql.Tx) (*store.Rollout, error) {
		r, err := scanRollout(tx.QueryRowContext(ctx, `SELECT `+rolloutCols+` FROM rollouts WHERE id = $1`+db.d.ForUpdate, id))
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("rollout %d: %w", id, store.ErrNotFound)
		}
		return &r, err
	}, fn, false)
}

// rolloutTx is the read-modify-write of a rollout with its endpoint.
func (db *DB) rolloutTx(ctx context.Context, what string, read func(*sql.Tx) (*store.Rollout, error),
	fn func(*store.Rollout, *store.Endpoint) (*store.TrafficChange, error), create bool) (store.Rollout, store.Endpoint, error) {
	var (
		outR  store.Rollout
		outE  store.Endpoint
		fnErr error
	)
	err := db.write(ctx, func(tx *sql.Tx) error {
		cur, err := read(tx)
		if err != nil {
			return err
		}
		old, err := getEndpoint(ctx, tx, cur.Endpoint, db.d.ForUpdate)
		if err != nil {
			return err
		}
		r := *cur
		e := old
		e.Traffic, e.Mirror = maps.Clone(old.Traffic), maps.Clone(old.Mirror)
		change, err := fn(&r, &e)
		if err != nil {
			fnErr = err
			return err
		}
		r.ID, r.Endpoint, r.Deployment, r.CreatedAt = cur.ID, cur.Endpoint, cur.Deployment, cur.CreatedAt
		now := time.Now()
		r.UpdatedAt = stamp(time.Time{}, now)
		trafficChanged := !maps.Equal(old.Traffic, e.Traffic) || !maps.Equal(old.Mirror, e.Mirror)
		outE = old
		if trafficChanged {
			outE.Traffic, outE.Mirror = e.Traffic, e.Mirror
			outE.Generation = old.Generation + 1
			outE.UpdatedAt = r.UpdatedAt
			tr, err := jsonIn(outE.Traffic)
			if err != nil {
				return err
			}
			mir, err := jsonIn(outE.Mirror)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE endpoints SET traffic = $1, mirror = $2, generation = $3, updated_at = $4 WHERE name = $5`,
				tr, mir, outE.Generation, nanos(outE.UpdatedAt), outE.Name); err != nil {
				return err
			}
			if r.Epoch == cur.Epoch {
				r.Epoch = outE.Generation
			}
		}
		args, err := rolloutArgs(&r)
		if err != nil {
			return err
		}
		if create {
			err := tx.QueryRowContext(ctx, `INSERT INTO rollouts (`+rolloutCols[4:]+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id`, args...).Scan(&r.ID)
			if db.d.IsUnique(err) {
				return fmt.Errorf("endpoint %s has an active rollout: %w", r.Endpoint, store.ErrExists)
			}
			if err != nil {
				return err
			}
		} else if _, err := tx.ExecContext(ctx, `UPDATE rollouts SET endpoint = $1, deployment = $2, plan = $3, state = $4, reason = $5, step = $6,
			step_started_at = $7, epoch = $8, baseline = $9, baseline_mirror = $10, data = $11, created_at = $12, updated_at = $13, finished_at = $14
			WHERE id = $15`, append(args, r.ID)...); err != nil {
			if db.d.IsUnique(err) {
				return fmt.Errorf("endpoint %s has an active rollout: %w", r.Endpoint, store.ErrExists)
			}
			return err
		}
		if change != nil {
			c := *change
			c.Endpoint = r.Endpoint
			if c.Generation == 0 {
				c.Generation = outE.Generation
			}
			if c.RolloutID == 0 {
				c.RolloutID = r.ID
			}
			if _, err := appendTrafficChange(ctx, tx, c); err != nil {
				return err
			}
		}
		outR = r
		return nil
	})
	if fnErr != nil {
		return store.Rollout{}, store.Endpoint{}, fnErr
	}
	if err != nil {
		return store.Rollout{}, store.Endpoint{}, fmt.Errorf("%s: %w", what, err)
	}
	return outR, outE, nil
}

// GetRollout implements store.Rollouts.
func (db *DB) GetRollout(ctx context.Context, id int64) (store.Rollout, error) {
	r, err := scanRollout(db.r.QueryRowContext(ctx, `SELECT `+rolloutCols+` FROM rollouts WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("rollout %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("get rollout %d: %w", id, err)
	}
	return r, nil
}

// ListRollouts implements store.Rollouts, oldest first.
func (db *DB) ListRollouts(ctx context.Context, f store.RolloutFilter) ([]store.Rollout, error) {
	q := `SELECT ` + rolloutCols + ` FROM rollouts WHERE 1 = 1`
	var args []any
	for _, c := range []struct{ col, val string }{{"endpoint", f.Endpoint}, {"deployment", f.Deployment}} {
		if c.val != "" {
			args = append(args, c.val)
			q += ` AND ` + c.col + ` = ` + param(len(args))
		}
	}
	if f.ActiveOnly {
		q += ` AND state IN ('` + store.RolloutRunning + `', '` + store.RolloutPaused + `')`
	}
	q += ` ORDER BY id DESC`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += ` LIMIT ` + param(len(args))
	}
	out, err := queryAll(ctx, db.r, "list rollouts", scanRollout, q, args...)
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// AppendTrafficChange implements store.Rollouts.
func (db *DB) AppendTrafficChange(ctx context.Context, c store.TrafficChange) (store.TrafficChange, error) {
	var out store.TrafficChange
	err := db.write(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = appendTrafficChange(ctx, tx, c)
		if db.d.IsForeignKey(err) {
			return fmt.Errorf("endpoint %s: %w", c.Endpoint, store.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return store.TrafficChange{}, fmt.Errorf("append traffic change of %s: %w", c.Endpoint, err)
	}
	return out, nil
}

func appendTrafficChange(ctx context.Context, tx *sql.Tx, c store.TrafficChange) (store.TrafficChange, error) {
	c.Time = stamp(c.Time, time.Now())
	entries, err := json.Marshal(c.Entries)
	if err != nil {
		return c, err
	}
	err = tx.QueryRowContext(ctx, `INSERT INTO traffic_history (endpoint, time, generation, rollout_id, cause, entries)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`, c.Endpoint, nanos(c.Time), c.Generation, c.RolloutID, c.Cause, string(entries)).Scan(&c.ID)
	return c, err
}

func scanTrafficChange(s scanner) (store.TrafficChange, error) {
	var (
		c       store.TrafficChange
		t       int64
		entries sql.NullString
	)
	if err := s.Scan(&c.ID, &c.Endpoint, &t, &c.Generation, &c.RolloutID, &c.Cause, &entries); err != nil {
		return c, err
	}
	c.Time = fromNanos(t)
	if entries.Valid && entries.String != "" && entries.String != "null" {
		if err := json.Unmarshal([]byte(entries.String), &c.Entries); err != nil {
			return c, fmt.Errorf("traffic change %d: %w", c.ID, err)
		}
	}
	return c, nil
}

// ListTrafficChanges implements store.Rollouts.
func (db *DB) ListTrafficChanges(ctx context.Context, endpoint string, rolloutID int64, limit int) ([]store.TrafficChange, error) {
	q := `SELECT id, endpoint, time, generation, rollout_id, cause, entries FROM traffic_history WHERE endpoint = $1`
	args := []any{endpoint}
	if rolloutID > 0 {
		args = append(args, rolloutID)
		q += ` AND rollout_id = $2`
	}
	q += ` ORDER BY id DESC`
	if limit > 0 {
		args = append(args, limit)
		q += ` LIMIT ` + param(len(args))
	}
	out, err := queryAll(ctx, db.r, "list traffic history", scanTrafficChange, q, args...)
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// PutStats implements store.Rollouts. It does not signal routing waiters:
// gateways write figures several times a second.
func (db *DB) PutStats(ctx context.Context, rows []store.Stats) error {
	if len(rows) == 0 {
		return nil
	}
	now := nanos(time.Now())
	err := inTx(ctx, db.w, func(tx *sql.Tx) error {
		for _, r := range rows {
			fig, err := rawIn(r.Figures)
			if err != nil {
				return fmt.Errorf("%s/%d/%s/%s: %w", r.Endpoint, r.Epoch, r.Kind, r.Subject, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO rollout_stats (source, endpoint, epoch, kind, subject, figures, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7)
				ON CONFLICT (source, endpoint, epoch, kind, subject) DO UPDATE SET figures = excluded.figures, updated_at = excluded.updated_at`,
				r.Source, r.Endpoint, r.Epoch, r.Kind, r.Subject, fig, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put stats: %w", err)
	}
	return nil
}

// ListStats implements store.Rollouts.
func (db *DB) ListStats(ctx context.Context, endpoint string, minEpoch int64) ([]store.Stats, error) {
	return queryAll(ctx, db.r, "list stats", func(s scanner) (store.Stats, error) {
		var (
			r   store.Stats
			fig sql.NullString
			upd int64
		)
		err := s.Scan(&r.Source, &r.Endpoint, &r.Epoch, &r.Kind, &r.Subject, &fig, &upd)
		r.Figures, r.UpdatedAt = rawOut(fig), fromNanos(upd)
		return r, err
	}, `SELECT source, endpoint, epoch, kind, subject, figures, updated_at FROM rollout_stats
		WHERE endpoint = $1 AND epoch >= $2 ORDER BY epoch, kind, subject, source`, endpoint, minEpoch)
}

// DeleteStats implements store.Rollouts.
func (db *DB) DeleteStats(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := inTx(ctx, db.w, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM rollout_stats WHERE updated_at < $1`, nanos(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete stats: %w", err)
	}
	return n, nil
}

// AppendDiffSamples implements store.Rollouts.
func (db *DB) AppendDiffSamples(ctx context.Context, samples []store.DiffSample, keep int) error {
	if len(samples) == 0 {
		return nil
	}
	err := inTx(ctx, db.w, func(tx *sql.Tx) error {
		type subj struct{ endpoint, kind, subject string }
		seen := map[subj]bool{}
		for _, s := range samples {
			body, err := rawIn(s.Body)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO shadow_diffs (endpoint, epoch, kind, subject, time, body) VALUES ($1, $2, $3, $4, $5, $6)`,
				s.Endpoint, s.Epoch, s.Kind, s.Subject, nanos(stamp(s.Time, time.Now())), body); err != nil {
				return err
			}
			seen[subj{s.Endpoint, s.Kind, s.Subject}] = true
		}
		if keep <= 0 {
			return nil
		}
		for k := range seen {
			var cut sql.NullInt64
			err := tx.QueryRowContext(ctx, `SELECT id FROM shadow_diffs WHERE endpoint = $1 AND kind = $2 AND subject = $3
				ORDER BY id DESC LIMIT 1 OFFSET $4`, k.endpoint, k.kind, k.subject, keep-1).Scan(&cut)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM shadow_diffs WHERE endpoint = $1 AND kind = $2 AND subject = $3 AND id < $4`,
				k.endpoint, k.kind, k.subject, cut.Int64); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append diff samples: %w", err)
	}
	return nil
}

// ListDiffSamples implements store.Rollouts, newest first.
func (db *DB) ListDiffSamples(ctx context.Context, endpoint string, minEpoch int64, limit int) ([]store.DiffSample, error) {
	q := `SELECT id, endpoint, epoch, kind, subject, time, body FROM shadow_diffs WHERE endpoint = $1 AND epoch >= $2 ORDER BY id DESC`
	args := []any{endpoint, minEpoch}
	if limit > 0 {
		args = append(args, limit)
		q += ` LIMIT $3`
	}
	return queryAll(ctx, db.r, "list diff samples", func(s scanner) (store.DiffSample, error) {
		var (
			d    store.DiffSample
			t    int64
			body sql.NullString
		)
		err := s.Scan(&d.ID, &d.Endpoint, &d.Epoch, &d.Kind, &d.Subject, &t, &body)
		d.Time, d.Body = fromNanos(t), rawOut(body)
		return d, err
	}, q, args...)
}
