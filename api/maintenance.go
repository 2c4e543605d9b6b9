package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// FsckRequest is the body of POST /fsck.
type FsckRequest struct {
	// Repair fixes what can be fixed on the server: corrupt or missing blobs
	// from good copies in the cache, damaged cache trees evicted, leftovers
	// of interrupted writes removed.
	Repair bool `json:"repair,omitempty"`
	// MinAge is how old a temporary file must be to be a leftover, as a Go
	// duration ("1h"); empty means 1h.
	MinAge string `json:"min_age,omitempty"`
}

// FileRef is a file of an artifact.
type FileRef struct {
	Artifact string `json:"artifact"`
	Path     string `json:"path"`
}

// FsckProblem is one thing fsck found.
type FsckProblem struct {
	// Kind is corrupt-blob, missing-blob, unreadable-artifact,
	// damaged-cache, partial-write or stray-file.
	Kind   string `json:"kind"`
	Digest string `json:"digest,omitempty"`
	// Path is the file or folder on the server.
	Path   string `json:"path,omitempty"`
	Detail string `json:"detail"`
	// Files are the artifacts and paths that hold the blob.
	Files []FileRef `json:"files,omitempty"`
	// UsedBy names the model versions and deployments that use it.
	UsedBy   []string `json:"used_by,omitempty"`
	Repaired bool     `json:"repaired,omitempty"`
	// Action says what was done, or what to do.
	Action string `json:"action,omitempty"`
}

// FsckReport is the answer of POST /fsck.
type FsckReport struct {
	Repair     bool          `json:"repair"`
	Blobs      int           `json:"blobs"`
	Bytes      int64         `json:"bytes"`
	Artifacts  int           `json:"artifacts"`
	CacheTrees int           `json:"cache_trees"`
	Problems   []FsckProblem `json:"problems"`
}

// Unrepaired counts the problems left.
func (r *FsckReport) Unrepaired() int {
	n := 0
	for _, p := range r.Problems {
		if !p.Repaired {
			n++
		}
	}
	return n
}

// FsckProgress is a progress line of POST /fsck's answer.
type FsckProgress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
}

// FsckLine is one line of POST /fsck's answer (newline-delimited JSON):
// progress lines while blobs are hashed, then one line with the report or
// an error.
type FsckLine struct {
	Progress *FsckProgress `json:"progress,omitempty"`
	Report   *FsckReport   `json:"report,omitempty"`
	Error    *Error        `json:"error,omitempty"`
}

// GCRequest is the body of POST /gc.
type GCRequest struct {
	DryRun bool `json:"dry_run,omitempty"`
	// MinAge is how old an unreferenced thing must be to go, as a Go
	// duration ("1h", "0s"); empty means 1h.
	MinAge string `json:"min_age,omitempty"`
}

// GCItem is one thing the collector removed (or would remove).
type GCItem struct {
	// Kind is blob, cache-tree or partial-write.
	Kind    string    `json:"kind"`
	Digest  string    `json:"digest,omitempty"`
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}

// GCReport is the answer of POST /gc.
type GCReport struct {
	DryRun     bool     `json:"dry_run"`
	MinAge     string   `json:"min_age"`
	Items      []GCItem `json:"items"`
	Bytes      int64    `json:"bytes"`
	Referenced int      `json:"referenced"`
	Young      int      `json:"young"`
}

// Fsck checks (and with Repair, repairs) the server's blobs and cache.
// progress, if set, is called as the server hashes blobs.
func (c *Client) Fsck(ctx context.Context, in FsckRequest, progress func(done, total int64)) (*FsckReport, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/fsck", nil, bytes.NewReader(b), "application/json")
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", req.URL.Path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return nil, decodeError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var line FsckLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("POST %s: decode answer: %w", req.URL.Path, err)
		}
		switch {
		case line.Error != nil:
			line.Error.StatusCode = http.StatusInternalServerError
			return nil, line.Error
		case line.Report != nil:
			return line.Report, nil
		case line.Progress != nil && progress != nil:
			progress(line.Progress.Done, line.Progress.Total)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("POST %s: %w", req.URL.Path, err)
	}
	return nil, errors.New("fsck: the server's answer ended before the report (see the server log)")
}

// GC removes (or with DryRun lists) what nothing references.
func (c *Client) GC(ctx context.Context, in GCRequest) (*GCReport, error) {
	var out GCReport
	_, err := c.sendJSON(ctx, http.MethodPost, "/gc", nil, in, &out)
	return &out, err
}

// PutBlob sends bytes that must hash to digest, replacing a corrupt or
// missing blob. created is false when the server had it right already.
func (c *Client) PutBlob(ctx context.Context, digest string, body io.Reader, size int64) (created bool, err error) {
	req, err := c.newRequest(ctx, http.MethodPut, "/blobs/"+url.PathEscape(digest), nil, body, "application/octet-stream")
	if err != nil {
		return false, err
	}
	req.ContentLength = size
	status, err := c.do(req, nil)
	return status == http.StatusCreated, err
}
