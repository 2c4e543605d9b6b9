package spec

import (
	"encoding/json"
	"strings"
)

// Model types (Azure's `type:`).
const (
	ModelTypeCustom = "custom_model"
	ModelTypeMLflow = "mlflow_model"
	ModelTypeTriton = "triton_model"
)

// Model is Azure's model YAML (az ml model create -f), also used inline as
// a deployment's model.
type Model struct {
	// Schema is the $schema URL; "" is fine.
	Schema string `json:"$schema,omitempty"`
	// Name is required for a model file; "" in an inline model makes it
	// anonymous (named after its content).
	Name string `json:"name,omitempty"`
	// Version is a string (YAML integers are read as their text); ""
	// means the registry assigns the next version.
	Version string `json:"version,omitempty"`
	// Description is free text; "" means none.
	Description string `json:"description,omitempty"`
	// Tags are free-form; nil means none.
	Tags map[string]string `json:"tags,omitempty"`
	// Path is the model's file or folder: a local path (absolute once
	// parsed with a BaseDir), sha256:<digest> after upload, or a URI
	// (azureml://datastores/…, https://…, runs:/…). Required.
	Path string `json:"path,omitempty"`
	// Type is custom_model, mlflow_model or triton_model; "" means
	// custom_model.
	Type string `json:"type,omitempty"`
	// Flavors is MLflow's flavor map, kept as written; nil means none.
	Flavors map[string]any `json:"flavors,omitempty"`
	// Properties are free-form; nil means none.
	Properties map[string]string `json:"properties,omitempty"`
	// Stage is a free-form lifecycle stage (Development, Production…);
	// "" means none.
	Stage string `json:"stage,omitempty"`
}

func (*Model) readOnlyFields() []string {
	return []string{"id", "creation_context", "job_name", "latest_version", "utc_time_created"}
}

// Validate checks a model file: name and path are required.
func (m *Model) Validate() error {
	return m.validate(false)
}

// validate checks a model; inline models may be anonymous (no name).
func (m *Model) validate(inline bool) error {
	var p problems
	switch {
	case m.Name == "" && !inline:
		p.add("name", "missing; a model needs a name (letters, digits, '-', '_', '.')")
	case m.Name != "":
		if err := ValidateName("model", m.Name); err != nil {
			p.add("name", "%v", err)
		}
	}
	if m.Version != "" {
		if err := validateVersion(m.Version); err != nil {
			p.add("version", "%v", err)
		}
	}
	if m.Path == "" {
		p.add("path", "missing; set the model's local file or folder (or a URI)")
	}
	if m.Type != "" {
		if msg := oneOf(m.Type, ModelTypeCustom, ModelTypeMLflow, ModelTypeTriton); msg != "" {
			p.add("type", "%s", msg)
		}
	}
	return p.err()
}

func (m *Model) normalize() {
	if m.Type != "" {
		m.Type = snakeCase(m.Type)
	}
}

// Defaulted returns a copy with defaults applied: type custom_model.
func (m *Model) Defaulted() *Model {
	c := clone(m)
	c.normalize()
	if c.Type == "" {
		c.Type = ModelTypeCustom
	}
	return c
}

// LocalPaths lists the model's local path (path), if it is one.
func (m *Model) LocalPaths() []PathRef {
	return localPath("path", &m.Path)
}

// clone deep-copies a spec value through JSON, which every spec type
// round-trips exactly.
func clone[T any](v *T) *T {
	out := new(T)
	if v == nil {
		return out
	}
	b, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(b, out)
	}
	if err != nil {
		// Unreachable for spec types; fall back to a shallow copy.
		*out = *v
	}
	return out
}

func lower(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
