package server

import (
	"context"
	"errors"

	"github.com/plumbline/plumbline/internal/store"
)

func openPostgres(ctx context.Context, url string) (store.Store, error) {
	return nil, errors.New("PostgreSQL store: not built yet")
}
