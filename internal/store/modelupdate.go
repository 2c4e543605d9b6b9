package store

import "context"

// ModelMetadata is what `model update` may change on a registered model
// version: its description, tags and stage. Its files, name, version and
// type never change.
type ModelMetadata struct {
	Description string
	Tags        map[string]string
	// Stage is free-form (Development, Production…); "" means none.
	Stage string
}

// ModelUpdater is a Store that can change a model version's metadata. It
// is separate from Store so that a store without it still builds; the API
// answers model update with 501 there.
type ModelUpdater interface {
	// UpdateModelMetadata replaces the version's description, tags and
	// stage and returns the updated version; ErrNotFound when there is no
	// such version.
	UpdateModelMetadata(ctx context.Context, name, version string, md ModelMetadata) (ModelVersion, error)
}
