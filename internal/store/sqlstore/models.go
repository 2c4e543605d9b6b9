package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/plumbline/plumbline/internal/store"
)

const modelCols = `name, version, digest, type, description, tags, path_base, size, file_count, archived, created_at, contract, stage`

func scanModel(s scanner) (store.ModelVersion, error) {
	var (
		m        store.ModelVersion
		tags     sql.NullString
		created  int64
		contract sql.NullString
	)
	err := s.Scan(&m.Name, &m.Version, &m.Digest, &m.Type, &m.Description, &tags,
		&m.PathBase, &m.Size, &m.FileCount, &m.Archived, &created, &contract, &m.Stage)
	if err != nil {
		return m, err
	}
	if contract.Valid && contract.String != "" {
		m.Contract = json.RawMessage(contract.String)
	}
	if err := jsonOut(tags, &m.Tags); err != nil {
		return m, fmt.Errorf("model %s:%s tags: %w", m.Name, m.Version, err)
	}
	m.CreatedAt = fromNanos(created)
	return m, nil
}

// CreateModelVersion implements store.Store.
func (db *DB) CreateModelVersion(ctx context.Context, m store.ModelVersion) (store.ModelVersion, error) {
	tags, err := jsonIn(m.Tags)
	if err != nil {
		return m, fmt.Errorf("create model %s: tags: %w", m.Name, err)
	}
	m.CreatedAt = stamp(m.CreatedAt, time.Now())
	var out store.ModelVersion
	err = db.write(ctx, func(tx *sql.Tx) error {
		if err := db.d.lockName(ctx, tx, "model:"+m.Name); err != nil {
			return err
		}
		if m.Version == "" {
			v, err := nextVersion(ctx, tx, m.Name)
			if err != nil {
				return err
			}
			m.Version = v
		} else {
			old, err := scanModel(tx.QueryRowContext(ctx,
				`SELECT `+modelCols+` FROM models WHERE name = $1 AND version = $2`, m.Name, m.Version))
			switch {
			case err == nil && old.Digest == m.Digest:
				out = old
				return nil
			case err == nil:
				return fmt.Errorf("model %s version %s is stored with digest %s, not %s: %w",
					m.Name, m.Version, old.Digest, m.Digest, store.ErrConflict)
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
		var contract sql.NullString
		if len(m.Contract) > 0 {
			contract = sql.NullString{String: string(m.Contract), Valid: true}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO models (`+modelCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			m.Name, m.Version, m.Digest, m.Type, m.Description, tags, m.PathBase, m.Size, m.FileCount,
			b2i(m.Archived), nanos(m.CreatedAt), contract, m.Stage)
		if db.d.IsUnique(err) {
			return store.ErrExists
		}
		out = m
		return err
	})
	if errors.Is(err, store.ErrConflict) {
		return store.ModelVersion{}, fmt.Errorf("create model: %w", err)
	}
	if err != nil {
		return store.ModelVersion{}, fmt.Errorf("create model %s:%s: %w", m.Name, m.Version, err)
	}
	return out, nil
}

// nextVersion is 1 + the greatest integer version of name.
func nextVersion(ctx context.Context, tx *sql.Tx, name string) (string, error) {
	return nextVersionIn(ctx, tx, "models", name)
}

// nextVersionIn is 1 + the greatest integer version of name in a table of
// versioned assets (models, environments).
func nextVersionIn(ctx context.Context, tx *sql.Tx, table, name string) (string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT version FROM `+table+` WHERE name = $1`, name)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var max int64
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return "", err
		}
		if v == "" || strings.TrimLeft(v, "0123456789") != "" {
			continue
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > max {
			max = n
		}
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	return strconv.FormatInt(max+1, 10), nil
}

// GetModelVersion implements store.Store.
func (db *DB) GetModelVersion(ctx context.Context, name, version string) (store.ModelVersion, error) {
	m, err := scanModel(db.r.QueryRowContext(ctx,
		`SELECT `+modelCols+` FROM models WHERE name = $1 AND version = $2`, name, version))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("model %s version %s: %w", name, version, store.ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("get model %s:%s: %w", name, version, err)
	}
	return m, nil
}

// LatestModelVersion implements store.Store.
func (db *DB) LatestModelVersion(ctx context.Context, name string) (store.ModelVersion, error) {
	m, err := scanModel(db.r.QueryRowContext(ctx,
		`SELECT `+modelCols+` FROM models WHERE name = $1 AND archived = 0
		 ORDER BY created_at DESC, id DESC LIMIT 1`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("model %s: no version that is not archived: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("latest model %s: %w", name, err)
	}
	return m, nil
}

// ListModels implements store.Store: by name, then newest first.
func (db *DB) ListModels(ctx context.Context, f store.ModelFilter) ([]store.ModelVersion, error) {
	q, args := assetQuery(`SELECT `+modelCols+` FROM models`, f)
	return queryAll(ctx, db.r, "list models", scanModel, q, args...)
}

// SetModelArchived implements store.Store.
func (db *DB) SetModelArchived(ctx context.Context, name, version string, archived bool) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`UPDATE models SET archived = $1 WHERE name = $2 AND ($3 = '' OR version = $4)`,
			b2i(archived), name, version, version)
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
	})
	if err != nil {
		if version == "" {
			return fmt.Errorf("archive model %s: %w", name, err)
		}
		return fmt.Errorf("archive model %s version %s: %w", name, version, err)
	}
	return nil
}

// jsonIn is the stored form of v: NULL for a nil map or empty raw message,
// JSON text otherwise.
func jsonIn[V any](m map[string]V) (any, error) {
	if m == nil {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func jsonOut[V any](s sql.NullString, m *map[string]V) error {
	if !s.Valid {
		*m = nil
		return nil
	}
	return json.Unmarshal([]byte(s.String), m)
}

func rawIn(b json.RawMessage) (any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if !json.Valid(b) {
		return nil, errors.New("not valid JSON")
	}
	return string(b), nil
}

func rawOut(s sql.NullString) json.RawMessage {
	if !s.Valid {
		return nil
	}
	return json.RawMessage(s.String)
}

// b2i stores a bool as 0 or 1 (an INTEGER column in every dialect).
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// param is the placeholder of the nth argument.
func param(n int) string { return "$" + strconv.Itoa(n) }

var _ store.ModelUpdater = (*DB)(nil)

// UpdateModelMetadata implements store.ModelUpdater.
func (db *DB) UpdateModelMetadata(ctx context.Context, name, version string, md store.ModelMetadata) (store.ModelVersion, error) {
	tags, err := jsonIn(md.Tags)
	if err != nil {
		return store.ModelVersion{}, fmt.Errorf("update model %s:%s: tags: %w", name, version, err)
	}
	var out store.ModelVersion
	err = db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE models SET description = $1, tags = $2, stage = $3 WHERE name = $4 AND version = $5`,
			md.Description, tags, md.Stage, name, version)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		out, err = scanModel(tx.QueryRowContext(ctx, `SELECT `+modelCols+` FROM models WHERE name = $1 AND version = $2`, name, version))
		return err
	})
	if err != nil {
		return store.ModelVersion{}, fmt.Errorf("update model %s version %s: %w", name, version, err)
	}
	return out, nil
}
