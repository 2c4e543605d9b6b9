package store

import (
	"context"
	"encoding/json"
	"time"
)

// EnvironmentVersion is one immutable registered environment version
// (az ml environment create): an image, or a build context, with its
// inference_config and conda file, as the API accepted it.
type EnvironmentVersion struct {
	Name    string
	Version string // decimal when auto-assigned; any string the user gave otherwise
	// Spec is the environment document (spec.Environment) as JSON, its local
	// paths replaced by artifact digests.
	Spec json.RawMessage
	// Digest identifies the content ("sha256:<hex>" of the canonical Spec):
	// registering the same name and version with the same Digest again is a
	// no-op, with another Digest a conflict.
	Digest      string
	Description string
	Tags        map[string]string
	Archived    bool
	CreatedAt   time.Time
}

// EnvironmentFilter selects environments in ListEnvironments, as
// ModelFilter selects models.
type EnvironmentFilter = ModelFilter

// Environments is the environment registry's part of the Store: versions,
// the latest label and archiving, with the same rules as models.
type Environments interface {
	// CreateEnvironmentVersion stores e. An empty e.Version is assigned the
	// next integer. If name and version exist with the same Digest it is a
	// no-op returning the stored record; with another Digest it fails with
	// ErrConflict.
	CreateEnvironmentVersion(ctx context.Context, e EnvironmentVersion) (EnvironmentVersion, error)
	GetEnvironmentVersion(ctx context.Context, name, version string) (EnvironmentVersion, error)
	// LatestEnvironmentVersion is the most recently created version that is
	// not archived; ErrNotFound when there is none.
	LatestEnvironmentVersion(ctx context.Context, name string) (EnvironmentVersion, error)
	// ListEnvironments lists by name, then newest first.
	ListEnvironments(ctx context.Context, f EnvironmentFilter) ([]EnvironmentVersion, error)
	// SetEnvironmentArchived archives (or restores) one version, or every
	// version of the name when version is "". ErrNotFound when nothing
	// matches.
	SetEnvironmentArchived(ctx context.Context, name, version string, archived bool) error
}
