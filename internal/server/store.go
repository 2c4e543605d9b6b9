package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/plumbline/plumbline/internal/datadir"
	"github.com/plumbline/plumbline/internal/store"
	"github.com/plumbline/plumbline/internal/store/postgres"
	"github.com/plumbline/plumbline/internal/store/sqlite"
)

// isPostgres reports whether a --store value names PostgreSQL.
func isPostgres(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// openStore opens the configured store: SQLite in the data dir by default.
func openStore(ctx context.Context, spec string, dd *datadir.Dir, log *slog.Logger) (store.Store, error) {
	switch {
	case spec == "" || spec == "sqlite":
		st, err := sqlite.Open(ctx, dd.DBPath())
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return st, nil
	case isPostgres(spec):
		return openPostgres(ctx, spec, log)
	default:
		return nil, fmt.Errorf("--store %q: want a postgres:// URL, or nothing for SQLite in the data dir", spec)
	}
}

// storeName is the store for logs, without credentials.
func storeName(spec string) string {
	if spec == "" {
		return "sqlite"
	}
	return postgres.Redact(spec)
}
