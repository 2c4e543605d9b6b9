package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/plumbline/plumbline/internal/store"
)

// EnvironmentDigest identifies an environment's content: the sha256 of its
// document without name and version, in canonical JSON (sorted keys). Two
// registrations of the same image, build context digest, conda file and
// routes have the same digest whatever they are called.
func EnvironmentDigest(doc json.RawMessage) (string, error) {
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		return "", fmt.Errorf("environment document: %w", err)
	}
	delete(m, "name")
	delete(m, "version")
	delete(m, "$schema")
	b, err := json.Marshal(m) // maps marshal with sorted keys
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// CreateEnvironment registers an environment version. e.Spec is the
// document with its local paths replaced by artifact digests; artifacts
// lists those digests, each of which must be ingested. The content digest
// is computed here. Registering the same name and version with the same
// content again returns the stored version with created false; with other
// content it fails with an error wrapping store.ErrConflict.
func (r *Registry) CreateEnvironment(ctx context.Context, e store.EnvironmentVersion, artifacts []string) (_ store.EnvironmentVersion, created bool, _ error) {
	if err := checkAsset("environment", "name", e.Name); err != nil {
		return e, false, err
	}
	if e.Version != "" {
		if err := checkAsset("environment", "version", e.Version); err != nil {
			return e, false, err
		}
		if e.Version == LabelLatest {
			return e, false, fmt.Errorf("environment version %q is reserved for the label; pick another: %w", e.Version, ErrInvalid)
		}
	}
	for _, d := range artifacts {
		if !r.Has(ctx, d) {
			return e, false, fmt.Errorf("environment %s: artifact %s: %w", e.Name, short(d), ErrArtifactNotFound)
		}
	}
	digest, err := EnvironmentDigest(e.Spec)
	if err != nil {
		return e, false, fmt.Errorf("environment %s: %w: %w", e.Name, err, ErrInvalid)
	}
	e.Digest = digest
	if e.Version != "" {
		old, err := r.st.GetEnvironmentVersion(ctx, e.Name, e.Version)
		switch {
		case err == nil && old.Digest == e.Digest:
			return old, false, nil
		case err == nil:
			return e, false, envConflict(old, e)
		case !errors.Is(err, store.ErrNotFound):
			return e, false, err
		}
	}
	got, err := r.st.CreateEnvironmentVersion(ctx, e)
	if errors.Is(err, store.ErrConflict) {
		if old, gerr := r.st.GetEnvironmentVersion(ctx, e.Name, e.Version); gerr == nil {
			return e, false, envConflict(old, e)
		}
	}
	if err != nil {
		return e, false, err
	}
	return got, true, nil
}

func envConflict(old, e store.EnvironmentVersion) error {
	return fmt.Errorf("environment %s version %s already exists with different content (%s ≠ %s); register it as a new version or omit the version: %w",
		e.Name, e.Version, short(old.Digest), short(e.Digest), store.ErrConflict)
}

// ResolveEnvironment returns the version named by versionOrLabel: a
// version, or the label "latest" (the newest version that is not archived).
func (r *Registry) ResolveEnvironment(ctx context.Context, name, versionOrLabel string) (store.EnvironmentVersion, error) {
	switch versionOrLabel {
	case "":
		return store.EnvironmentVersion{}, fmt.Errorf("environment %s: give a version (name:1) or the label latest (name@latest): %w", name, ErrInvalid)
	case LabelLatest:
		return r.st.LatestEnvironmentVersion(ctx, name)
	}
	return r.st.GetEnvironmentVersion(ctx, name, versionOrLabel)
}

// checkAsset checks an asset's name or version as checkName does for models.
func checkAsset(kind, what, s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%s %s %q: use 1-255 letters, digits, '-', '_' or '.', starting with a letter or digit: %w",
			kind, what, s, ErrInvalid)
	}
	return nil
}
