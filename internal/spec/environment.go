package spec

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Runtimes for the plumbline: extension of an environment.
const (
	// RuntimePlumber runs an R plumber API: the scoring script is plumbed and
	// served the way Azure's start_plumber.R does.
	RuntimePlumber = "plumber"
	// RuntimeGeneric runs any HTTP scoring server given by command.
	RuntimeGeneric = "generic"
)

// DefaultDockerfilePath is build.dockerfile_path when not set.
const DefaultDockerfilePath = "Dockerfile"

// Environment is Azure's environment YAML, used inline as a deployment's
// environment or on its own (az ml environment create -f).
type Environment struct {
	// Schema is the $schema URL; "" is fine.
	Schema string `json:"$schema,omitempty"`
	// Name is required for an environment file; "" in an inline environment
	// makes it anonymous.
	Name string `json:"name,omitempty"`
	// Version is a string (YAML integers are read as their text); "" means
	// the next version.
	Version string `json:"version,omitempty"`
	// Description is free text; "" means none.
	Description string `json:"description,omitempty"`
	// Tags are free-form; nil means none.
	Tags map[string]string `json:"tags,omitempty"`
	// Image is the container image; "" means none (then build or
	// plumbline.command is required).
	Image string `json:"image,omitempty"`
	// Build is a Docker build context; nil means none.
	Build *BuildContext `json:"build,omitempty"`
	// CondaFile is a conda specification (a path or inline) built on top of
	// Image; nil means none.
	CondaFile *CondaFile `json:"conda_file,omitempty"`
	// OSType is linux or windows; "" means linux.
	OSType string `json:"os_type,omitempty"`
	// Datastore is Azure's upload datastore; ignored by plumbline.
	Datastore string `json:"datastore,omitempty" spec:"ignored"`
	// InferenceConfig gives a custom container's routes; nil means the
	// runtime's own (plumber: /live, /ready, /score on the instance port).
	InferenceConfig *InferenceConfig `json:"inference_config,omitempty"`
	// Plumbline is plumbline's extension; nil means none.
	Plumbline *EnvironmentExtension `json:"plumbline,omitempty"`
}

// BuildContext is an environment's Docker build.
type BuildContext struct {
	// Path is the build context folder (local, absolute once parsed with a
	// BaseDir; sha256:<digest> after upload; or a URL). Required.
	Path string `json:"path,omitempty"`
	// DockerfilePath is relative to Path; "" means "Dockerfile".
	DockerfilePath string `json:"dockerfile_path,omitempty"`
}

// InferenceConfig is a custom container's routes. All three are required
// when the block is present.
type InferenceConfig struct {
	// LivenessRoute is probed by the liveness probe.
	LivenessRoute *Route `json:"liveness_route,omitempty"`
	// ReadinessRoute is probed by the readiness probe.
	ReadinessRoute *Route `json:"readiness_route,omitempty"`
	// ScoringRoute receives /score requests.
	ScoringRoute *Route `json:"scoring_route,omitempty"`
}

// Route is a container port and HTTP path.
type Route struct {
	// Port is the container port, 1–65535; 0 means missing (an error).
	Port int `json:"port"`
	// Path is the HTTP path, starting with "/"; "" means missing (an error).
	Path string `json:"path"`
}

// EnvironmentExtension is the environment's plumbline: block.
type EnvironmentExtension struct {
	// Runtime is plumber or generic; "" means plumbline decides from the
	// scoring script (a .R script → plumber).
	Runtime string `json:"runtime,omitempty"`
	// Command is the server's argv with {port}, {model_dir} and {code_dir}
	// placeholders; nil means the runtime's default (required for generic).
	Command []string `json:"command,omitempty"`
}

// ExpandCommand returns Command with {port}, {model_dir} and {code_dir}
// replaced.
func (x *EnvironmentExtension) ExpandCommand(port int, modelDir, codeDir string) []string {
	if x == nil {
		return nil
	}
	r := strings.NewReplacer("{port}", strconv.Itoa(port), "{model_dir}", modelDir, "{code_dir}", codeDir)
	out := make([]string, len(x.Command))
	for i, a := range x.Command {
		out[i] = r.Replace(a)
	}
	return out
}

// CondaFile is an environment's conda_file: a path, or the specification
// inline. Exactly one of Path and Inline is set.
type CondaFile struct {
	// Path is the conda file (absolute once parsed with a BaseDir,
	// sha256:<digest> after upload).
	Path string
	// Inline is the conda specification (name, channels, dependencies).
	Inline map[string]any
}

// MarshalJSON writes the path string or the inline mapping.
func (c CondaFile) MarshalJSON() ([]byte, error) {
	if c.Inline != nil {
		return json.Marshal(c.Inline)
	}
	return json.Marshal(c.Path)
}

// UnmarshalJSON reads a path string or an inline mapping.
func (c *CondaFile) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*c = CondaFile{Path: s}
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("conda_file: want a path or a conda specification: %w", err)
	}
	*c = CondaFile{Inline: m}
	return nil
}

func (c *CondaFile) unmarshalNode(d *decoder, p string, n *yaml.Node) {
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
		*c = CondaFile{Path: n.Value}
	case n.Kind == yaml.MappingNode:
		if m, ok := d.genericMap(p, n); ok {
			*c = CondaFile{Inline: m}
		}
	default:
		d.unexpected(p, n, "a conda file path or an inline conda specification")
	}
}

func (*Environment) readOnlyFields() []string {
	return []string{"id", "creation_context", "latest_version"}
}

// unknownFieldHint explains conda keys at the environment level (Azure's
// rule: they belong in a conda file).
func (*Environment) unknownFieldHint(key string) string {
	switch key {
	case "channels", "dependencies", "prefix":
		return "conda keys (channels, dependencies) cannot appear in an environment; this looks like a conda file: " +
			"put the conda specification in its own file and reference it with conda_file: <file>"
	}
	return ""
}

// Validate checks an environment file: name is required.
func (e *Environment) Validate() error {
	return e.validate(false)
}

func (e *Environment) validate(inline bool) error {
	var p problems
	switch {
	case e.Name == "" && !inline:
		p.add("name", "missing; an environment needs a name (letters, digits, '-', '_', '.')")
	case e.Name != "":
		if err := ValidateName("environment", e.Name); err != nil {
			p.add("name", "%v", err)
		}
	}
	if e.Version != "" {
		if err := validateVersion(e.Version); err != nil {
			p.add("version", "%v", err)
		}
	}
	hasCommand := e.Plumbline != nil && len(e.Plumbline.Command) > 0
	switch {
	case e.Image == "" && e.Build == nil && !hasCommand:
		p.add("", "one of image, build or plumbline.command is required")
	case e.Image != "" && e.Build != nil:
		p.add("build", "image and build cannot both be set; use the image, or build one from the context")
	}
	if e.Build != nil && e.Build.Path == "" {
		p.add("build.path", "missing; set the Docker build context folder")
	}
	if e.CondaFile != nil {
		switch {
		case e.CondaFile.Path == "" && e.CondaFile.Inline == nil:
			p.add("conda_file", "empty; set a conda file path or remove conda_file")
		case e.Image == "":
			p.add("conda_file", "conda_file requires image: the conda environment is created on top of it")
		}
		if e.CondaFile.Inline != nil {
			p.nest("conda_file", validateConda(e.CondaFile.Inline))
		}
	}
	if e.OSType != "" {
		if msg := oneOf(lower(e.OSType), "linux", "windows"); msg != "" {
			p.add("os_type", "%s", msg)
		}
	}
	if ic := e.InferenceConfig; ic != nil {
		for _, r := range []struct {
			name string
			r    *Route
		}{{"liveness_route", ic.LivenessRoute}, {"readiness_route", ic.ReadinessRoute}, {"scoring_route", ic.ScoringRoute}} {
			field := "inference_config." + r.name
			if r.r == nil {
				p.add(field, "missing; inference_config needs liveness_route, readiness_route and scoring_route, each with port and path")
				continue
			}
			if r.r.Port < 1 || r.r.Port > 65535 {
				if r.r.Port == 0 {
					p.add(field+".port", "missing; set the container port (1-65535)")
				} else {
					p.add(field+".port", "must be from 1 to 65535; got %d", r.r.Port)
				}
			}
			switch {
			case r.r.Path == "":
				p.add(field+".path", "missing; set the HTTP path, for example /score")
			case !strings.HasPrefix(r.r.Path, "/"):
				p.add(field+".path", "must start with /; got %s", quote(r.r.Path))
			}
		}
	}
	if x := e.Plumbline; x != nil {
		if x.Runtime != "" {
			if msg := oneOf(lower(x.Runtime), RuntimePlumber, RuntimeGeneric); msg != "" {
				p.add("plumbline.runtime", "%s", msg)
			}
		}
		if lower(x.Runtime) == RuntimeGeneric && len(x.Command) == 0 {
			p.add("plumbline.command", "missing; runtime generic needs the server's command line, for example [python, serve.py, --port, \"{port}\"]")
		}
		if len(x.Command) > 0 && strings.TrimSpace(x.Command[0]) == "" {
			p.add("plumbline.command.0", "the program to run is empty")
		}
	}
	return p.err()
}

// validateConda checks a conda specification's shape.
func validateConda(m map[string]any) error {
	var p problems
	if v, ok := m["channels"]; ok && v != nil {
		if _, ok := v.([]any); !ok {
			p.add("channels", "expected a list of channel names")
		}
	}
	if v, ok := m["dependencies"]; ok && v != nil {
		if _, ok := v.([]any); !ok {
			p.add("dependencies", "expected a list of packages (and optionally pip: [...])")
		}
	}
	return p.err()
}

func (e *Environment) normalize() {
	if e.OSType != "" {
		e.OSType = lower(e.OSType)
	}
	if e.Plumbline != nil && e.Plumbline.Runtime != "" {
		e.Plumbline.Runtime = lower(e.Plumbline.Runtime)
	}
}

// Defaulted returns a copy with defaults applied: os_type linux and
// build.dockerfile_path Dockerfile.
func (e *Environment) Defaulted() *Environment {
	c := clone(e)
	c.normalize()
	if c.OSType == "" {
		c.OSType = "linux"
	}
	if c.Build != nil && c.Build.DockerfilePath == "" {
		c.Build.DockerfilePath = DefaultDockerfilePath
	}
	return c
}

// LocalPaths lists the environment's local paths: build.path and a
// conda_file given as a path.
func (e *Environment) LocalPaths() []PathRef {
	var out []PathRef
	if e.Build != nil {
		out = append(out, localPath("build.path", &e.Build.Path)...)
	}
	if e.CondaFile != nil && e.CondaFile.Inline == nil {
		out = append(out, localPath("conda_file", &e.CondaFile.Path)...)
	}
	return out
}
