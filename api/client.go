package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Client calls a plumbline server's control-plane API. The zero value is not
// usable; build one with NewClient.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
	// UserAgent is sent with every request; empty means "plumbline-client".
	UserAgent string
}

// NewClient returns a client for the server at baseURL (e.g.
// "https://127.0.0.1:8443") authenticating with the admin token. A nil
// httpClient means http.DefaultClient; pass one whose transport trusts the
// server's CA.
func NewClient(baseURL, token string, httpClient *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("server URL %q: scheme must be https or http", baseURL)
	}
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	return &Client{base: u, token: token, http: httpClient}, nil
}

// BaseURL is the server URL the client talks to.
func (c *Client) BaseURL() string { return c.base.String() }

// HTTPClient is the underlying HTTP client (it trusts the server's CA).
func (c *Client) HTTPClient() *http.Client { return c.http }

// IsNotFound reports whether err is an API error with status 404.
func IsNotFound(err error) bool { return statusOf(err) == http.StatusNotFound }

// IsConflict reports whether err is an API error with status 409.
func IsConflict(err error) bool { return statusOf(err) == http.StatusConflict }

func statusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

func (c *Client) url(path string, q url.Values) string {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + "/api/" + Version + path
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body io.Reader, contentType string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	ua := c.UserAgent
	if ua == "" {
		ua = "plumbline-client"
	}
	req.Header.Set("User-Agent", ua)
	return req, nil
}

// do sends the request and decodes a JSON answer into out (if non-nil). It
// returns the HTTP status for callers that distinguish 200 from 201.
func (c *Client) do(req *http.Request, out any) (int, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return resp.StatusCode, decodeError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: decode answer: %w", req.Method, req.URL.Path, err)
	}
	return resp.StatusCode, nil
}

func decodeError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var er ErrorResponse
	if json.Unmarshal(body, &er) == nil && er.Error != nil && er.Error.Message != "" {
		er.Error.StatusCode = resp.StatusCode
		return er.Error
	}
	msg := strings.TrimSpace(string(body))
	if msg == "" {
		msg = resp.Status
	}
	return &Error{Code: http.StatusText(resp.StatusCode), Message: msg, StatusCode: resp.StatusCode}
}

func (c *Client) getJSON(ctx context.Context, path string, q url.Values, out any) error {
	req, err := c.newRequest(ctx, http.MethodGet, path, q, nil, "")
	if err != nil {
		return err
	}
	_, err = c.do(req, out)
	return err
}

func (c *Client) sendJSON(ctx context.Context, method, path string, q url.Values, in, out any) (int, error) {
	var body io.Reader
	switch v := in.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, method, path, q, body, "application/json")
	if err != nil {
		return 0, err
	}
	return c.do(req, out)
}

// ServerInfo describes the server.
func (c *Client) ServerInfo(ctx context.Context) (*ServerInfo, error) {
	var out ServerInfo
	return &out, c.getJSON(ctx, "/server", nil, &out)
}

// UploadArtifact streams a tar (optionally gzip) archive to the server.
func (c *Client) UploadArtifact(ctx context.Context, tarStream io.Reader) (*Artifact, error) {
	req, err := c.newRequest(ctx, http.MethodPost, "/artifacts", nil, tarStream, "application/x-tar")
	if err != nil {
		return nil, err
	}
	var out Artifact
	_, err = c.do(req, &out)
	return &out, err
}

// HasArtifact reports whether the server already holds the artifact.
func (c *Client) HasArtifact(ctx context.Context, digest string) (bool, error) {
	req, err := c.newRequest(ctx, http.MethodHead, "/artifacts/"+url.PathEscape(digest), nil, nil, "")
	if err != nil {
		return false, err
	}
	_, err = c.do(req, nil)
	if IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// DownloadArtifact returns the artifact as a tar stream; the caller closes it.
func (c *Client) DownloadArtifact(ctx context.Context, digest string) (io.ReadCloser, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/artifacts/"+url.PathEscape(digest), nil, nil, "")
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp.Body, nil
}

// CreateModel registers a model version. created is false when the same name,
// version and content already existed (a no-op).
func (c *Client) CreateModel(ctx context.Context, m ModelCreate) (model *Model, created bool, err error) {
	var out Model
	code, err := c.sendJSON(ctx, http.MethodPost, "/models", nil, m, &out)
	return &out, code == http.StatusCreated, err
}

// ModelListOptions filters ListModels.
type ModelListOptions struct {
	Name            string
	IncludeArchived bool
	ArchivedOnly    bool
	MaxResults      int
}

// ListModels lists model versions, newest first.
func (c *Client) ListModels(ctx context.Context, o ModelListOptions) ([]Model, error) {
	var out []Model
	return out, c.getJSON(ctx, "/models", o.query(), &out)
}

// query is the list's filter as the API reads it (models, environments).
func (o ModelListOptions) query() url.Values {
	q := url.Values{}
	if o.Name != "" {
		q.Set("name", o.Name)
	}
	if o.IncludeArchived {
		q.Set("include_archived", "true")
	}
	if o.ArchivedOnly {
		q.Set("archived_only", "true")
	}
	if o.MaxResults > 0 {
		q.Set("max_results", strconv.Itoa(o.MaxResults))
	}
	return q
}

// GetModel returns one version; version "@latest" (or label "latest") means
// the newest version that is not archived.
func (c *Client) GetModel(ctx context.Context, name, version string) (*Model, error) {
	var out Model
	return &out, c.getJSON(ctx, "/models/"+url.PathEscape(name)+"/versions/"+url.PathEscape(version), nil, &out)
}

// UpdateModel replaces a model version's description, tags and stage;
// version "@latest" names the newest version that is not archived.
func (c *Client) UpdateModel(ctx context.Context, name, version string, u ModelUpdate) (*Model, error) {
	var out Model
	_, err := c.sendJSON(ctx, http.MethodPatch, "/models/"+url.PathEscape(name)+"/versions/"+url.PathEscape(version), nil, u, &out)
	return &out, err
}

// ArchiveModel archives (or restores, archived=false) one version, or all
// versions when version is "".
func (c *Client) ArchiveModel(ctx context.Context, name, version string, archived bool) error {
	verb := "archive"
	if !archived {
		verb = "restore"
	}
	path := "/models/" + url.PathEscape(name)
	if version != "" {
		path += "/versions/" + url.PathEscape(version)
	}
	_, err := c.sendJSON(ctx, http.MethodPost, path+"/"+verb, nil, nil, nil)
	return err
}

// CreateEndpoint creates an endpoint from its document (JSON or YAML bytes).
// It fails with a 409 error if the name is taken.
func (c *Client) CreateEndpoint(ctx context.Context, doc []byte) (*Endpoint, error) {
	var out Endpoint
	_, err := c.sendJSON(ctx, http.MethodPost, "/endpoints", nil, doc, &out)
	return &out, err
}

// UpdateEndpoint replaces an existing endpoint's document.
func (c *Client) UpdateEndpoint(ctx context.Context, name string, doc []byte) (*Endpoint, error) {
	var out Endpoint
	_, err := c.sendJSON(ctx, http.MethodPut, "/endpoints/"+url.PathEscape(name), nil, doc, &out)
	return &out, err
}

// GetEndpoint returns one endpoint.
func (c *Client) GetEndpoint(ctx context.Context, name string) (*Endpoint, error) {
	var out Endpoint
	return &out, c.getJSON(ctx, "/endpoints/"+url.PathEscape(name), nil, &out)
}

// GetSnippets returns the endpoint's ready-to-paste calls; requestFile, if
// set, is the absolute path of the JSON request they send (else the
// deployments' sample request).
func (c *Client) GetSnippets(ctx context.Context, name, requestFile string) (*Snippets, error) {
	var q url.Values
	if requestFile != "" {
		q = url.Values{"request_file": {requestFile}}
	}
	var out Snippets
	return &out, c.getJSON(ctx, "/endpoints/"+url.PathEscape(name)+"/snippets", q, &out)
}

// CreateSigninLink asks for a one-time studio sign-in link, opening
// endpoint (if set) once signed in.
func (c *Client) CreateSigninLink(ctx context.Context, endpoint string) (*SigninLink, error) {
	var out SigninLink
	_, err := c.sendJSON(ctx, http.MethodPost, "/signin-links", nil, SigninLinkRequest{Endpoint: endpoint}, &out)
	return &out, err
}

// GetEndpointDocument returns the endpoint's document with its live traffic,
// every field as it was given; change it and send it back with
// UpdateEndpoint.
func (c *Client) GetEndpointDocument(ctx context.Context, name string) ([]byte, error) {
	var out json.RawMessage
	return out, c.getJSON(ctx, "/endpoints/"+url.PathEscape(name)+"/document", nil, &out)
}

// ListEndpoints lists all endpoints.
func (c *Client) ListEndpoints(ctx context.Context) ([]Endpoint, error) {
	var out []Endpoint
	return out, c.getJSON(ctx, "/endpoints", nil, &out)
}

// DeleteEndpoint starts deleting an endpoint and all its deployments.
func (c *Client) DeleteEndpoint(ctx context.Context, name string) error {
	_, err := c.sendJSON(ctx, http.MethodDelete, "/endpoints/"+url.PathEscape(name), nil, nil, nil)
	return err
}

// ListKeys returns the endpoint's keys (auth_mode key).
func (c *Client) ListKeys(ctx context.Context, endpoint string) (*Keys, error) {
	var out Keys
	_, err := c.sendJSON(ctx, http.MethodPost, "/endpoints/"+url.PathEscape(endpoint)+"/listkeys", nil, nil, &out)
	return &out, err
}

// RegenerateKeys replaces the primary or secondary key.
func (c *Client) RegenerateKeys(ctx context.Context, endpoint, keyType string) (*Keys, error) {
	var out Keys
	_, err := c.sendJSON(ctx, http.MethodPost, "/endpoints/"+url.PathEscape(endpoint)+"/regenerateKeys", nil, RegenerateKeys{KeyType: keyType}, &out)
	return &out, err
}

// GetToken issues an aml_token for the endpoint.
func (c *Client) GetToken(ctx context.Context, endpoint string) (*Token, error) {
	var out Token
	_, err := c.sendJSON(ctx, http.MethodPost, "/endpoints/"+url.PathEscape(endpoint)+"/token", nil, nil, &out)
	return &out, err
}

func deploymentPath(endpoint, name string) string {
	p := "/endpoints/" + url.PathEscape(endpoint) + "/deployments"
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// CreateDeployment creates a deployment from its document, whose local paths
// the caller has already uploaded and replaced with artifact digests.
func (c *Client) CreateDeployment(ctx context.Context, endpoint string, doc []byte) (*Deployment, error) {
	var out Deployment
	_, err := c.sendJSON(ctx, http.MethodPost, deploymentPath(endpoint, ""), nil, doc, &out)
	return &out, err
}

// UpdateDeployment replaces an existing deployment's document.
func (c *Client) UpdateDeployment(ctx context.Context, endpoint, name string, doc []byte) (*Deployment, error) {
	var out Deployment
	_, err := c.sendJSON(ctx, http.MethodPut, deploymentPath(endpoint, name), nil, doc, &out)
	return &out, err
}

// GetDeployment returns one deployment with its status.
func (c *Client) GetDeployment(ctx context.Context, endpoint, name string) (*Deployment, error) {
	var out Deployment
	return &out, c.getJSON(ctx, deploymentPath(endpoint, name), nil, &out)
}

// GetDeploymentDocument returns the deployment's document as given:
// references pinned, defaults not filled in. Change it and send it back
// with UpdateDeployment.
func (c *Client) GetDeploymentDocument(ctx context.Context, endpoint, name string) ([]byte, error) {
	var out json.RawMessage
	return out, c.getJSON(ctx, deploymentPath(endpoint, name)+"/document", nil, &out)
}

// ListDeployments lists an endpoint's deployments.
func (c *Client) ListDeployments(ctx context.Context, endpoint string) ([]Deployment, error) {
	var out []Deployment
	return out, c.getJSON(ctx, deploymentPath(endpoint, ""), nil, &out)
}

// DeleteDeployment starts deleting a deployment; it must have no traffic.
func (c *Client) DeleteDeployment(ctx context.Context, endpoint, name string) error {
	_, err := c.sendJSON(ctx, http.MethodDelete, deploymentPath(endpoint, name), nil, nil, nil)
	return err
}

// LogOptions selects deployment logs.
type LogOptions struct {
	// Lines is the number of lines to tail per instance; 0 means the server's
	// default (5000, as Azure).
	Lines int
	// Instance limits the logs to one instance ("blue-0").
	Instance string
	// Follow streams new lines until ctx ends.
	Follow bool
	// Container is "" or "inference-server" (the scoring server's console),
	// "storage-initializer" (the events of fetching the model and code for
	// each instance) or "image-build" (the log of the deployment's image
	// build).
	Container string
}

// DeploymentLogs returns the deployment's console logs as text; the caller
// closes the reader.
func (c *Client) DeploymentLogs(ctx context.Context, endpoint, name string, o LogOptions) (io.ReadCloser, error) {
	q := url.Values{}
	if o.Lines > 0 {
		q.Set("lines", strconv.Itoa(o.Lines))
	}
	if o.Instance != "" {
		q.Set("instance", o.Instance)
	}
	if o.Follow {
		q.Set("follow", "true")
	}
	if o.Container != "" {
		q.Set("container", o.Container)
	}
	req, err := c.newRequest(ctx, http.MethodGet, deploymentPath(endpoint, name)+"/logs", q, nil, "")
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp.Body, nil
}

// EventFilter selects events.
type EventFilter struct {
	Endpoint   string
	Deployment string
	AfterID    int64
	Limit      int
}

// Events lists lifecycle events, oldest first.
func (c *Client) Events(ctx context.Context, f EventFilter) ([]Event, error) {
	q := url.Values{}
	if f.Endpoint != "" {
		q.Set("endpoint", f.Endpoint)
	}
	if f.Deployment != "" {
		q.Set("deployment", f.Deployment)
	}
	if f.AfterID > 0 {
		q.Set("after", strconv.FormatInt(f.AfterID, 10))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out []Event
	return out, c.getJSON(ctx, "/events", q, &out)
}
