package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Environment is one registered environment version, as `environment show`
// prints it: Azure's environment fields, with the build context and conda
// file pinned to artifact digests.
type Environment struct {
	Name        string            `json:"name"`
	Version     string            `json:"version"`
	Description string            `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Image       string            `json:"image,omitempty"`
	// Build is {"path": "sha256:…", "dockerfile_path": "Dockerfile"}.
	Build json.RawMessage `json:"build,omitempty"`
	// CondaFile is the conda specification (inline) or its digest.
	CondaFile       json.RawMessage `json:"conda_file,omitempty"`
	OSType          string          `json:"os_type,omitempty"`
	InferenceConfig json.RawMessage `json:"inference_config,omitempty"`
	// Plumbline is the plumbline: extension block, if any.
	Plumbline json.RawMessage `json:"plumbline,omitempty"`
	// Digest identifies the content (not the name or version).
	Digest    string    `json:"digest"`
	Archived  bool      `json:"archived,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// UsedBy lists "<endpoint>/<deployment>" using this version (show only).
	UsedBy []string `json:"used_by,omitempty"`
}

// EnvironmentListOptions filters ListEnvironments.
type EnvironmentListOptions = ModelListOptions

// CreateEnvironment registers an environment version from its document
// (JSON or YAML bytes, local paths already uploaded and replaced by their
// digests). created is false when the same name, version and content
// already existed.
func (c *Client) CreateEnvironment(ctx context.Context, doc []byte) (env *Environment, created bool, err error) {
	var out Environment
	code, err := c.sendJSON(ctx, http.MethodPost, "/environments", nil, doc, &out)
	return &out, code == http.StatusCreated, err
}

// ListEnvironments lists environment versions by name, newest first.
func (c *Client) ListEnvironments(ctx context.Context, o EnvironmentListOptions) ([]Environment, error) {
	var out []Environment
	return out, c.getJSON(ctx, "/environments", o.query(), &out)
}

// GetEnvironment returns one version; "@latest" (or "latest") means the
// newest version that is not archived.
func (c *Client) GetEnvironment(ctx context.Context, name, version string) (*Environment, error) {
	var out Environment
	return &out, c.getJSON(ctx, "/environments/"+url.PathEscape(name)+"/versions/"+url.PathEscape(version), nil, &out)
}

// ArchiveEnvironment archives (or restores, archived=false) one version, or
// all versions when version is "".
func (c *Client) ArchiveEnvironment(ctx context.Context, name, version string, archived bool) error {
	verb := "archive"
	if !archived {
		verb = "restore"
	}
	path := "/environments/" + url.PathEscape(name)
	if version != "" {
		path += "/versions/" + url.PathEscape(version)
	}
	_, err := c.sendJSON(ctx, http.MethodPost, path+"/"+verb, nil, nil, nil)
	return err
}

// Image is an image on the server's container engine.
type Image struct {
	Ref string `json:"ref"`
}

// ImageBuild asks the server to build an uploaded build context.
type ImageBuild struct {
	// Context is the build context's artifact digest.
	Context string `json:"context"`
	// Dockerfile is relative to the context ("" means Dockerfile).
	Dockerfile string   `json:"dockerfile,omitempty"`
	Tags       []string `json:"tags"`
}

// BuildMessage is one line of an image build's streamed answer; the last
// has Done set, with Image (success) or Error.
type BuildMessage struct {
	Line  string `json:"line,omitempty"`
	Done  bool   `json:"done,omitempty"`
	Image string `json:"image,omitempty"`
	Error string `json:"error,omitempty"`
}

// ImageExists reports whether the server's container engine has the image.
func (c *Client) ImageExists(ctx context.Context, ref string) (bool, error) {
	var out Image
	err := c.getJSON(ctx, "/images", url.Values{"ref": {ref}}, &out)
	if IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// BuildImage builds an uploaded build context on the server, calling line
// for each line of the build's output. A failed build is an error with
// the builder's reason.
func (c *Client) BuildImage(ctx context.Context, in ImageBuild, line func(string)) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/images/build", nil, bytes.NewReader(b), "application/json")
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeError(resp)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var m BuildMessage
		if err := dec.Decode(&m); err != nil {
			return fmt.Errorf("image build: the answer ended early: %w", err)
		}
		if m.Done {
			if m.Error != "" {
				return errors.New(m.Error)
			}
			return nil
		}
		if line != nil {
			line(m.Line)
		}
	}
}
