// Package api holds plumbline's public REST wire types and a Go client for the
// control-plane API served under /api/v1.
//
// Field names follow Azure ML's CLI v2 output (snake_case), so what
// `plumbline online-endpoint show -o json` prints reads like `az ml
// online-endpoint show`. Credential responses use Azure's camelCase names
// (primaryKey, accessToken, expiryTimeUtc…).
//
// This package imports nothing from plumbline's internal packages: it is the
// contract that outside programs build against.
package api

import (
	"encoding/json"
	"time"
)

// Version of the REST API; the path prefix is /api/v1.
const Version = "v1"

// Provisioning states, as Azure names them.
const (
	StateCreating  = "Creating"
	StateUpdating  = "Updating"
	StateDeleting  = "Deleting"
	StateSucceeded = "Succeeded"
	StateFailed    = "Failed"
)

// Error is the body of every non-2xx control-plane response:
// {"error": {"code": ..., "message": ..., "target": ...}}.
type Error struct {
	// Code is a short CamelCase word: BadArgument, ValidationError, NotFound,
	// Conflict, Unauthorized, PayloadTooLarge, InternalServerError.
	Code string `json:"code"`
	// Message is one human sentence saying what is wrong and how to fix it.
	Message string `json:"message"`
	// Target names what the error is about: a field path, a resource name.
	Target string `json:"target,omitempty"`
	// Details lists every problem when there are several (validation).
	Details []Error `json:"details,omitempty"`
	// StatusCode is the HTTP status the error came with (client side only).
	StatusCode int `json:"-"`
}

func (e *Error) Error() string {
	return e.Message
}

// ErrorResponse wraps Error on the wire.
type ErrorResponse struct {
	Error *Error `json:"error"`
}

// Artifact is an immutable, content-addressed tree of files (a model folder or
// a code snapshot).
type Artifact struct {
	Digest string `json:"digest"`
	Files  int    `json:"files"`
	Size   int64  `json:"size"`
	// Root is the single top-level name when there is one ("models", "crate.bin").
	Root string `json:"root,omitempty"`
}

// ManifestEntry is one file, folder or link of an artifact.
type ManifestEntry struct {
	Path   string `json:"path"`
	Type   string `json:"type"`
	Mode   uint32 `json:"mode"`
	Size   int64  `json:"size,omitempty"`
	Digest string `json:"digest,omitempty"`
	Target string `json:"target,omitempty"`
}

// Model is one registered model version.
type Model struct {
	Name        string            `json:"name"`
	Version     string            `json:"version"`
	Type        string            `json:"type"`
	Description string            `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	// Path is the registered path's basename, kept under AZUREML_MODEL_DIR.
	Path     string `json:"path"`
	Digest   string `json:"digest"`
	Size     int64  `json:"size"`
	Files    int    `json:"files"`
	Archived bool   `json:"archived,omitempty"`
	// Stage is free-form (Development, Production…), changed with model
	// update; "" means none.
	Stage     string    `json:"stage,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// UsedBy lists "<endpoint>/<deployment>" pinning this version (show only).
	UsedBy []string `json:"used_by,omitempty"`
	// InputContract is the version's input contract (prototype or JSON
	// Schema, and policies), if it has one.
	InputContract json.RawMessage `json:"input_contract,omitempty"`
	// Warnings are problems found in the version's files when it was
	// registered, e.g. a crate whose function was saved without the model
	// it uses (model create only).
	Warnings []string `json:"warnings,omitempty"`
}

// ModelCreate registers an uploaded artifact as a model version.
type ModelCreate struct {
	Name string `json:"name"`
	// Version is optional: empty means the next integer.
	Version     string            `json:"version,omitempty"`
	Type        string            `json:"type,omitempty"`
	Description string            `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	// Stage is optional and free-form (Development, Production…).
	Stage string `json:"stage,omitempty"`
	// Artifact is the digest returned by POST /api/v1/artifacts.
	Artifact string `json:"artifact"`
	// InputContract is optional: {"columns": [{name, type, levels}], or
	// "json_schema": {...}, "extra_columns": reject|ignore,
	// "all_na_columns": reject|allow}; the gateway enforces it for
	// deployments of this version.
	InputContract json.RawMessage `json:"input_contract,omitempty"`
}

// ModelUpdate replaces what `model update` may change on a model version:
// its description, tags and stage (all three: send what GET returned,
// changed). Its files, name, version and type never change.
type ModelUpdate struct {
	Description string            `json:"description"`
	Tags        map[string]string `json:"tags"`
	Stage       string            `json:"stage"`
}

// Endpoint is an online endpoint as `show` prints it.
type Endpoint struct {
	Name                string            `json:"name"`
	Description         string            `json:"description,omitempty"`
	Tags                map[string]string `json:"tags,omitempty"`
	AuthMode            string            `json:"auth_mode"`
	Kind                string            `json:"kind"`
	Traffic             map[string]int    `json:"traffic"`
	MirrorTraffic       map[string]int    `json:"mirror_traffic"`
	ProvisioningState   string            `json:"provisioning_state"`
	Reason              string            `json:"reason,omitempty"`
	ScoringURI          string            `json:"scoring_uri"`
	OpenAPIURI          string            `json:"openapi_uri"`
	PublicNetworkAccess string            `json:"public_network_access,omitempty"`
	Properties          map[string]string `json:"properties,omitempty"`
	CreatedAt           time.Time         `json:"created_at"`
	UpdatedAt           time.Time         `json:"updated_at"`
}

// Instance is one running instance of a deployment (a plumbline extension to
// Azure's deployment output).
type Instance struct {
	Name     string    `json:"name"`
	State    string    `json:"state"`
	Ready    bool      `json:"ready"`
	Restarts int       `json:"restarts"`
	Started  time.Time `json:"started_at,omitempty"`
	Message  string    `json:"message,omitempty"`
}

// Deployment is an online deployment as `show` prints it: the deployment
// document (with defaults and pinned references) flattened together with
// its status fields.
type Deployment struct {
	Name              string     `json:"name"`
	EndpointName      string     `json:"endpoint_name"`
	ProvisioningState string     `json:"provisioning_state"`
	Reason            string     `json:"reason,omitempty"`
	ModelDigest       string     `json:"model_digest,omitempty"`
	CodeDigest        string     `json:"code_digest,omitempty"`
	Runtime           string     `json:"runtime,omitempty"`
	Instances         []Instance `json:"instances"`
	// Health are the deployment's recent figures from the gateway (a
	// plumbline extension); nil when it answered no request in the window
	// (or the server keeps no figures: a control-only replica).
	Health *DeploymentHealth `json:"health,omitempty"`
	// Serving, set when the latest version failed while an earlier one
	// that succeeded keeps serving, says which (a plumbline extension).
	Serving   *DeploymentServing `json:"serving,omitempty"`
	CreatedAt time.Time          `json:"created_at"`
	UpdatedAt time.Time          `json:"updated_at"`
	// Spec is the deployment document (JSON object). Its keys are merged into
	// the top level on the wire; status keys above win on a clash.
	Spec json.RawMessage `json:"-"`
}

// DeploymentHealth is what the gateway saw of a deployment recently.
type DeploymentHealth struct {
	// WindowSeconds is how far back the figures go (5 minutes, less just
	// after the server started).
	WindowSeconds int `json:"window_seconds"`
	Requests      int `json:"requests"`
	// Errors are answers that were 5xx, 424 (the model failed), 408 or
	// 429; a caller's mistake (400, 401, 404, 413, 422) is not counted.
	Errors    int     `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	// P50Ms and P99Ms are latency quantiles in milliseconds; absent
	// without requests.
	P50Ms *float64 `json:"p50_ms,omitempty"`
	P99Ms *float64 `json:"p99_ms,omitempty"`
}

// DeploymentServing names the version that serves after a failed update.
type DeploymentServing struct {
	// Version is the deployment's version (its generation: 1 when created,
	// one more per update) that serves; 0 when not recorded.
	Version int64 `json:"version"`
	// Model is that version's model, name:version.
	Model string `json:"model,omitempty"`
	// Summary reads "Failed — still serving version 1 (model iris-crate:1)".
	Summary string `json:"summary"`
}

type deploymentStatus Deployment

// MarshalJSON flattens Spec and the status fields into one object.
func (d Deployment) MarshalJSON() ([]byte, error) {
	status, err := json.Marshal(deploymentStatus(d))
	if err != nil {
		return nil, err
	}
	if len(d.Spec) == 0 {
		return status, nil
	}
	merged := map[string]json.RawMessage{}
	if err := json.Unmarshal(d.Spec, &merged); err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(status, &top); err != nil {
		return nil, err
	}
	for k, v := range top {
		merged[k] = v
	}
	return json.Marshal(merged)
}

// UnmarshalJSON reads the flattened form back; Spec receives the whole object.
func (d *Deployment) UnmarshalJSON(b []byte) error {
	var s deploymentStatus
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*d = Deployment(s)
	d.Spec = append(json.RawMessage(nil), b...)
	return nil
}

// Keys is the get-credentials answer for auth_mode key.
type Keys struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
	// TokensRevoked is set by regenerate-keys on an aml_token endpoint:
	// every token issued so far was revoked (there are no keys).
	TokensRevoked bool `json:"tokensRevoked,omitempty"`
}

// Token is the get-credentials answer for auth_mode aml_token.
type Token struct {
	AccessToken         string    `json:"accessToken"`
	TokenType           string    `json:"tokenType"`
	ExpiryTimeUtc       time.Time `json:"expiryTimeUtc"`
	RefreshAfterTimeUtc time.Time `json:"refreshAfterTimeUtc"`
}

// RegenerateKeys asks for a new primary or secondary key.
type RegenerateKeys struct {
	// KeyType is "primary" (default) or "secondary", any case.
	KeyType string `json:"keyType"`
}

// Event is one lifecycle event of a deployment or one of its instances.
type Event struct {
	ID         int64     `json:"id"`
	Time       time.Time `json:"time"`
	Endpoint   string    `json:"endpoint"`
	Deployment string    `json:"deployment,omitempty"`
	Instance   string    `json:"instance,omitempty"`
	Type       string    `json:"type"`
	Reason     string    `json:"reason"`
	Message    string    `json:"message"`
}

// Snippets are an endpoint's ready-to-paste calls, the same ones `plumbline
// up` prints and the studio shows: run Shell first (it exports KEY), then
// Curl, or R in an R session started from that shell.
type Snippets struct {
	Shell string `json:"shell"`
	Curl  string `json:"curl"`
	R     string `json:"r"`
}

// SigninLinkRequest asks for a one-time studio sign-in link.
type SigninLinkRequest struct {
	// Endpoint, if set, is the endpoint the studio opens after signing in.
	Endpoint string `json:"endpoint,omitempty"`
}

// SigninLink is a studio URL that signs its first visitor in, once, before
// ExpiresAt. The code is in the URL's fragment, which browsers never send
// to a server.
type SigninLink struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// SigninRequest redeems a sign-in link's code (POST /api/v1/signin, no
// admin token needed).
type SigninRequest struct {
	Code string `json:"code"`
}

// SigninResponse carries the admin token the studio keeps for its tab.
type SigninResponse struct {
	Token string `json:"token"`
}

// ServerInfo describes the server a client talks to.
type ServerInfo struct {
	Version string `json:"version"`
	// ScoringBaseURL is the gateway's base URL, e.g. https://localhost:8443.
	ScoringBaseURL string `json:"scoring_base_url"`
	// CACertPath is the local CA certificate file clients should trust
	// (empty when the server uses a certificate it was given).
	CACertPath string `json:"ca_cert_path,omitempty"`
	Driver     string `json:"driver"`
	DataDir    string `json:"data_dir,omitempty"`
}
