package registry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/plumbline/plumbline/internal/blob"
)

// ErrGCUnsafe: the garbage collector cannot tell what is referenced (a
// referenced artifact's manifest cannot be read), so it removes nothing.
var ErrGCUnsafe = errors.New("garbage collection is not safe now")

// Kinds of GCItem.
const (
	GCBlob      = "blob"
	GCCacheTree = "cache-tree"
	GCPartial   = "partial-write"
)

// GCItem is one thing the collector removed (or, in a dry run, would remove).
type GCItem struct {
	Kind    string    `json:"kind"`
	Digest  string    `json:"digest,omitempty"`
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}

// GCReport is what a collection removed and kept.
type GCReport struct {
	DryRun bool     `json:"dry_run"`
	MinAge string   `json:"min_age"`
	Items  []GCItem `json:"items"`
	// Bytes is the disk space freed (or that would be): the blobs' sizes and
	// the cache trees' files that are copies (a hard link to a blob frees
	// nothing by itself).
	Bytes int64 `json:"bytes"`
	// Referenced counts the blobs kept because a record uses them; Young
	// the unreferenced ones kept because they are younger than MinAge.
	Referenced int `json:"referenced"`
	Young      int `json:"young"`
}

// GCOptions tune GC.
type GCOptions struct {
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// MinAge: zero means DefaultMinAge; negative means none (an upload in
	// progress may then lose its blobs and have to be retried).
	MinAge time.Duration
}

// GC removes what nothing references: blobs that are neither an artifact a
// model version, endpoint or deployment names (archived model versions
// count) nor a file of one, materialized trees of such artifacts, and
// temporary files of writes that never finished — each only once older
// than MinAge, so that an upload whose model is not created yet keeps its
// blobs (an upload that finds a blob already stored refreshes its time).
// When a referenced artifact's manifest cannot be read, GC removes nothing
// and fails with ErrGCUnsafe: run Fsck first.
func (r *Registry) GC(ctx context.Context, opts GCOptions) (GCReport, error) {
	minAge := opts.MinAge
	switch {
	case minAge == 0:
		minAge = DefaultMinAge
	case minAge < 0:
		minAge = 0
	}
	rep := GCReport{DryRun: opts.DryRun, MinAge: minAge.String(), Items: []GCItem{}}
	refs, err := r.collectReferences(ctx)
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	if len(refs.unreadable) > 0 {
		var names []string
		for d, err := range refs.unreadable {
			names = append(names, fmt.Sprintf("%s (used by %s: %v)", d, strings.Join(refs.usersOf(d), ", "), err))
		}
		sort.Strings(names)
		return rep, fmt.Errorf("gc: the files of %d referenced artifact(s) cannot be known, so nothing was removed: %s; run plumbline fsck --repair first: %w",
			len(names), strings.Join(names, "; "), ErrGCUnsafe)
	}
	cutoff := time.Now().Add(-minAge)

	// Blobs.
	err = r.blobs.Walk(ctx, func(in blob.Info) error {
		if in.Digest == "" {
			return nil // strays are fsck's to report, never removed
		}
		if refs.referenced(in.Digest) {
			rep.Referenced++
			return nil
		}
		if in.ModTime.After(cutoff) {
			rep.Young++
			return nil
		}
		rep.Items = append(rep.Items, GCItem{Kind: GCBlob, Digest: in.Digest, Path: in.Path, Size: in.Size, ModTime: in.ModTime})
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}

	// Cache trees and temporary files.
	entries, err := os.ReadDir(r.cacheDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return rep, fmt.Errorf("gc: cache: %w", err)
	}
	for _, e := range entries {
		p := filepath.Join(r.cacheDir, e.Name())
		fi, err := e.Info()
		if err != nil || fi.ModTime().After(cutoff) {
			continue
		}
		switch d := blob.Prefix + e.Name(); {
		case isPartial(e.Name()):
			rep.Items = append(rep.Items, GCItem{Kind: GCPartial, Path: p, Size: treeBytes(p, true), ModTime: fi.ModTime()})
		case blob.ValidDigest(d) && !refs.referenced(d):
			rep.Items = append(rep.Items, GCItem{Kind: GCCacheTree, Digest: d, Path: p, Size: treeBytes(p, true), ModTime: fi.ModTime()})
		}
	}
	bentries, err := os.ReadDir(r.blobs.Dir())
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	for _, e := range bentries {
		if fi, err := e.Info(); err == nil && isPartial(e.Name()) && !fi.ModTime().After(cutoff) {
			rep.Items = append(rep.Items, GCItem{Kind: GCPartial, Path: filepath.Join(r.blobs.Dir(), e.Name()), Size: fi.Size(), ModTime: fi.ModTime()})
		}
	}

	// Trees first: a tree hard-linked to a blob frees the blob's space only
	// once both are gone.
	sort.SliceStable(rep.Items, func(i, j int) bool {
		a, b := rep.Items[i], rep.Items[j]
		if a.Kind != b.Kind {
			return a.Kind > b.Kind // partial-write, cache-tree, blob
		}
		return a.Path < b.Path
	})
	kept := rep.Items[:0]
	for _, it := range rep.Items {
		if !opts.DryRun {
			if err := r.gcRemove(ctx, it, cutoff); err != nil {
				if errors.Is(err, errKept) {
					continue
				}
				return rep, fmt.Errorf("gc: %w", err)
			}
		}
		rep.Bytes += it.Size
		kept = append(kept, it)
	}
	rep.Items = kept
	return rep, nil
}

// errKept: an item changed since it was listed (used again) and stays.
var errKept = errors.New("kept")

func (r *Registry) gcRemove(ctx context.Context, it GCItem, cutoff time.Time) error {
	switch it.Kind {
	case GCBlob:
		// Used again since it was listed (an upload of the same bytes)?
		if fi, err := os.Stat(it.Path); err != nil || fi.ModTime().After(cutoff) {
			return errKept
		}
		return r.blobs.Remove(it.Digest)
	case GCCacheTree:
		_, err := r.exclusive(ctx, it.Digest, func() (string, error) {
			if fi, err := os.Stat(it.Path); err != nil || fi.ModTime().After(cutoff) {
				return "", errKept
			}
			return "", r.evictDir(it.Path)
		})
		return err
	default:
		return removeTree(it.Path)
	}
}
