package sqlite

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/plumbline/plumbline/internal/store"
)

func TestUpdateModelMetadata(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	m, err := db.CreateModelVersion(ctx, store.ModelVersion{Name: "iris", Version: "1", Digest: "sha256:ab", Description: "first", Tags: map[string]string{"a": "b"}, Stage: "Development"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Stage != "Development" {
		t.Errorf("stage at creation: got %q", m.Stage)
	}
	got, err := db.UpdateModelMetadata(ctx, "iris", "1", store.ModelMetadata{Description: "second", Tags: map[string]string{"team": "ml"}, Stage: "Production"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := db.GetModelVersion(ctx, "iris", "1")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []store.ModelVersion{got, again} {
		if v.Description != "second" || v.Stage != "Production" || v.Digest != "sha256:ab" {
			t.Errorf("got description %q, stage %q, digest %q; want second, Production, sha256:ab (unchanged)", v.Description, v.Stage, v.Digest)
		}
		if diff := cmp.Diff(map[string]string{"team": "ml"}, v.Tags); diff != "" {
			t.Errorf("tags (-want +got):\n%s", diff)
		}
	}
	if _, err := db.UpdateModelMetadata(ctx, "iris", "9", store.ModelMetadata{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a missing version: got %v, want ErrNotFound", err)
	}
}
