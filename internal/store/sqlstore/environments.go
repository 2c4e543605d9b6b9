package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/plumbline/plumbline/internal/store"
)

const envCols = `name, version, digest, spec, description, tags, archived, created_at`

func scanEnvironment(s scanner) (store.EnvironmentVersion, error) {
	var (
		e          store.EnvironmentVersion
		spec, tags sql.NullString
		created    int64
	)
	if err := s.Scan(&e.Name, &e.Version, &e.Digest, &spec, &e.Description, &tags, &e.Archived, &created); err != nil {
		return e, err
	}
	if err := jsonOut(tags, &e.Tags); err != nil {
		return e, fmt.Errorf("environment %s:%s tags: %w", e.Name, e.Version, err)
	}
	e.Spec, e.CreatedAt = rawOut(spec), fromNanos(created)
	return e, nil
}

// CreateEnvironmentVersion implements store.Store.
func (db *DB) CreateEnvironmentVersion(ctx context.Context, e store.EnvironmentVersion) (store.EnvironmentVersion, error) {
	tags, err := jsonIn(e.Tags)
	if err != nil {
		return e, fmt.Errorf("create environment %s: tags: %w", e.Name, err)
	}
	spec, err := rawIn(e.Spec)
	if err != nil {
		return e, fmt.Errorf("create environment %s: spec: %w", e.Name, err)
	}
	e.CreatedAt = stamp(e.CreatedAt, time.Now())
	var out store.EnvironmentVersion
	err = db.write(ctx, func(tx *sql.Tx) error {
		if err := db.d.lockName(ctx, tx, "environment:"+e.Name); err != nil {
			return err
		}
		if e.Version == "" {
			v, err := nextVersionIn(ctx, tx, "environments", e.Name)
			if err != nil {
				return err
			}
			e.Version = v
		} else {
			old, err := scanEnvironment(tx.QueryRowContext(ctx,
				`SELECT `+envCols+` FROM environments WHERE name = $1 AND version = $2`, e.Name, e.Version))
			switch {
			case err == nil && old.Digest == e.Digest:
				out = old
				return nil
			case err == nil:
				return fmt.Errorf("environment %s version %s is stored with digest %s, not %s: %w",
					e.Name, e.Version, old.Digest, e.Digest, store.ErrConflict)
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO environments (`+envCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			e.Name, e.Version, e.Digest, spec, e.Description, tags, b2i(e.Archived), nanos(e.CreatedAt))
		if db.d.IsUnique(err) {
			return store.ErrExists
		}
		out = e
		return err
	})
	if errors.Is(err, store.ErrConflict) {
		return store.EnvironmentVersion{}, fmt.Errorf("create environment: %w", err)
	}
	if err != nil {
		return store.EnvironmentVersion{}, fmt.Errorf("create environment %s:%s: %w", e.Name, e.Version, err)
	}
	return out, nil
}

// GetEnvironmentVersion implements store.Store.
func (db *DB) GetEnvironmentVersion(ctx context.Context, name, version string) (store.EnvironmentVersion, error) {
	e, err := scanEnvironment(db.r.QueryRowContext(ctx,
		`SELECT `+envCols+` FROM environments WHERE name = $1 AND version = $2`, name, version))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("environment %s version %s: %w", name, version, store.ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("get environment %s:%s: %w", name, version, err)
	}
	return e, nil
}

// LatestEnvironmentVersion implements store.Store.
func (db *DB) LatestEnvironmentVersion(ctx context.Context, name string) (store.EnvironmentVersion, error) {
	e, err := scanEnvironment(db.r.QueryRowContext(ctx,
		`SELECT `+envCols+` FROM environments WHERE name = $1 AND archived = 0
		 ORDER BY created_at DESC, id DESC LIMIT 1`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("environment %s: no version that is not archived: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("latest environment %s: %w", name, err)
	}
	return e, nil
}

// ListEnvironments implements store.Store: by name, then newest first.
func (db *DB) ListEnvironments(ctx context.Context, f store.EnvironmentFilter) ([]store.EnvironmentVersion, error) {
	q, args := assetQuery(`SELECT `+envCols+` FROM environments`, f)
	return queryAll(ctx, db.r, "list environments", scanEnvironment, q, args...)
}

// assetQuery completes a versioned-asset SELECT with f's conditions and
// order: by name, then newest first.
func assetQuery(q string, f store.ModelFilter) (string, []any) {
	q += ` WHERE 1 = 1`
	var args []any
	if f.Name != "" {
		args = append(args, f.Name)
		q += ` AND name = ` + param(len(args))
	}
	switch {
	case f.ArchivedOnly:
		q += ` AND archived = 1`
	case !f.IncludeArchived:
		q += ` AND archived = 0`
	}
	q += ` ORDER BY name, created_at DESC, id DESC`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += ` LIMIT ` + param(len(args))
	}
	return q, args
}

// SetEnvironmentArchived implements store.Store.
func (db *DB) SetEnvironmentArchived(ctx context.Context, name, version string, archived bool) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`UPDATE environments SET archived = $1 WHERE name = $2 AND ($3 = '' OR version = $4)`,
			b2i(archived), name, version, version)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err == nil {
				err = store.ErrNotFound
			}
			return err
		}
		return nil
	})
	if err != nil {
		if version == "" {
			return fmt.Errorf("archive environment %s: %w", name, err)
		}
		return fmt.Errorf("archive environment %s version %s: %w", name, version, err)
	}
	return nil
}
