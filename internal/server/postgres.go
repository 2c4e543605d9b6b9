package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/plumbline/plumbline/internal/store"
	"github.com/plumbline/plumbline/internal/store/postgres"
)

func openPostgres(ctx context.Context, url string, log *slog.Logger) (store.Store, error) {
	st, err := postgres.Open(ctx, url, log.With("component", "store"))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return st, nil
}
