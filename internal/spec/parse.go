package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Kind is what a file describes.
type Kind string

const (
	KindEndpoint    Kind = "endpoint"
	KindDeployment  Kind = "deployment"
	KindModel       Kind = "model"
	KindEnvironment Kind = "environment"
	// KindConda is a conda environment file (name, channels, dependencies),
	// referenced by an environment's conda_file.
	KindConda Kind = "conda"
)

// ParseOptions control Parse.
type ParseOptions struct {
	// BaseDir resolves relative local paths (model path, code folder, build
	// context, conda file) to absolute ones, and is where they are checked
	// for existence; "" leaves paths as written and checks nothing.
	BaseDir string
	// Sets are `--set path=value` overrides applied before decoding.
	Sets []string
	// Updates are az's generic update arguments (--set, --add, --remove),
	// applied in order after Sets; see Update.
	Updates []Update
	// Expect is the kind the caller wants; "" detects it from $schema or
	// the keys. A $schema naming another kind is an error.
	Expect Kind
}

// Document is a parsed file.
type Document struct {
	// File is the name given to Parse (used in messages).
	File string
	// Kind says which one of the typed values below is set; the others are
	// nil.
	Kind Kind
	// Endpoint is set when Kind is KindEndpoint.
	Endpoint *Endpoint
	// Deployment is set when Kind is KindDeployment.
	Deployment *Deployment
	// Model is set when Kind is KindModel.
	Model *Model
	// Environment is set when Kind is KindEnvironment.
	Environment *Environment
	// Conda is a conda file's content, as written, when Kind is KindConda.
	Conda map[string]any
	// Notices list fields accepted and ignored (Azure-only or read-only),
	// each once, in file order.
	Notices []Notice
	// Warnings list things that will probably not do what the user
	// expects: a local path that does not exist, an unknown instance type.
	Warnings []Notice

	pos map[string]fieldPos
}

// Parse decodes one YAML or JSON document strictly, applies opts.Sets,
// resolves local paths against opts.BaseDir, and validates it. Every
// problem is returned as Errors (errors.Is(err, ErrInvalid)). When only
// validation fails, the Document is returned along with the error, so that
// its notices can still be shown; on any other error it is nil.
func Parse(file string, data []byte, opts ParseOptions) (*Document, error) {
	t, err := parseTree(file, data)
	if err != nil {
		return nil, err
	}
	if err := t.applySets(opts.Sets); err != nil {
		return nil, err
	}
	if err := t.applyUpdates(opts.Updates); err != nil {
		return nil, err
	}
	kind, err := t.detectKind(opts.Expect)
	if err != nil {
		return nil, err
	}
	doc := &Document{File: file, Kind: kind}
	d := newDecoder(t)
	var target any
	switch kind {
	case KindEndpoint:
		doc.Endpoint = new(Endpoint)
		target = doc.Endpoint
	case KindDeployment:
		doc.Deployment = new(Deployment)
		target = doc.Deployment
	case KindModel:
		doc.Model = new(Model)
		target = doc.Model
	case KindEnvironment:
		doc.Environment = new(Environment)
		target = doc.Environment
	case KindConda:
		doc.Conda, _ = d.genericMap("", t.root)
	}
	if target != nil {
		d.decodeStruct("", t.root, reflect.ValueOf(target).Elem())
	}
	if len(d.errs) > 0 {
		return nil, d.errs.sorted()
	}
	doc.pos = d.pos
	doc.Notices = d.notices
	doc.normalize()
	if opts.BaseDir != "" {
		base, err := filepath.Abs(opts.BaseDir)
		if err != nil {
			return nil, fmt.Errorf("resolve paths of %s: %w", file, err)
		}
		doc.Warnings = append(doc.Warnings, resolvePaths(doc.LocalPaths(), base)...)
		if doc.Deployment != nil {
			if err := doc.Deployment.inlineSampleRequest(base); err != nil {
				return doc, fmt.Errorf("%s: %w", file, err)
			}
		}
	}
	doc.Warnings = append(doc.Warnings, doc.sizeWarnings()...)
	if doc.Environment != nil || (doc.Deployment != nil && doc.Deployment.Environment != nil && doc.Deployment.Environment.Inline != nil) {
		doc.Warnings = append(doc.Warnings, doc.osWarnings()...)
	}
	for i := range doc.Warnings {
		doc.Warnings[i] = doc.locateNotice(doc.Warnings[i])
	}
	sortNotices(doc.Notices)
	sortNotices(doc.Warnings)
	if err := doc.Validate(); err != nil {
		return doc, err
	}
	return doc, nil
}

// LoadEndpoint reads, parses and validates an endpoint file, applying sets
// (--set a.b=c); relative paths are resolved against the file's folder.
// When only validation fails, the value and its Document are returned with
// the error; when the file cannot be read or decoded, they are nil. The
// other Load functions behave the same way.
func LoadEndpoint(path string, sets []string) (*Endpoint, *Document, error) {
	doc, err := load(path, sets, KindEndpoint)
	if doc == nil {
		return nil, nil, err
	}
	return doc.Endpoint, doc, err
}

// LoadDeployment reads, parses and validates a deployment file.
func LoadDeployment(path string, sets []string) (*Deployment, *Document, error) {
	doc, err := load(path, sets, KindDeployment)
	if doc == nil {
		return nil, nil, err
	}
	return doc.Deployment, doc, err
}

// LoadModel reads, parses and validates a model file.
func LoadModel(path string, sets []string) (*Model, *Document, error) {
	doc, err := load(path, sets, KindModel)
	if doc == nil {
		return nil, nil, err
	}
	return doc.Model, doc, err
}

// LoadEnvironment reads, parses and validates an environment file.
func LoadEnvironment(path string, sets []string) (*Environment, *Document, error) {
	doc, err := load(path, sets, KindEnvironment)
	if doc == nil {
		return nil, nil, err
	}
	return doc.Environment, doc, err
}

func load(path string, sets []string, kind Kind) (*Document, error) {
	return Load(path, ParseOptions{Sets: sets, Expect: kind})
}

// Load reads and parses a file with opts; relative paths in it are resolved
// against the file's folder (opts.BaseDir is set to it).
func Load(path string, opts ParseOptions) (*Document, error) {
	what := "the"
	if opts.Expect != "" {
		what = string(opts.Expect)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s file: %w", what, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("read %s file: %w", what, err)
	}
	opts.BaseDir = filepath.Dir(abs)
	return Parse(path, data, opts)
}

// Validate validates the typed value and locates each problem in the file
// (file:line:col, or the --set it came from). It can be called again after
// the caller changes the value (for example to fill in endpoint_name).
func (doc *Document) Validate() error {
	var err error
	switch doc.Kind {
	case KindEndpoint:
		err = doc.Endpoint.Validate()
	case KindDeployment:
		err = doc.Deployment.Validate()
	case KindModel:
		err = doc.Model.Validate()
	case KindEnvironment:
		err = doc.Environment.Validate()
	case KindConda:
		err = validateConda(doc.Conda)
	}
	var errs Errors
	if !errors.As(err, &errs) {
		return err
	}
	for i := range errs {
		errs[i] = doc.locate(errs[i])
	}
	return errs.sorted()
}

// LocalPaths lists the document's local paths (see Deployment.LocalPaths).
func (doc *Document) LocalPaths() []PathRef {
	switch doc.Kind {
	case KindDeployment:
		return doc.Deployment.LocalPaths()
	case KindModel:
		return doc.Model.LocalPaths()
	case KindEnvironment:
		return doc.Environment.LocalPaths()
	}
	return nil
}

// Position returns where field (a dotted path such as
// request_settings.request_timeout_ms) was written: its line and column in
// the file, or the --set expression it came from. ok is false when neither
// the field nor any parent of it was in the file.
func (doc *Document) Position(field string) (line, col int, set string, ok bool) {
	for f := field; f != ""; {
		if p, found := doc.pos[f]; found {
			return p.line, p.col, p.set, true
		}
		i := strings.LastIndexByte(f, '.')
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return 0, 0, "", false
}

func (doc *Document) locate(p Problem) Problem {
	if p.File != "" || p.Line != 0 || p.Set != "" {
		return p
	}
	p.File = doc.File
	if line, col, set, ok := doc.Position(p.Field); ok {
		p.Line, p.Column, p.Set = line, col, set
	}
	return p
}

func (doc *Document) locateNotice(n Notice) Notice {
	p := doc.locate(Problem{Field: n.Field})
	n.File, n.Line, n.Set = p.File, p.Line, p.Set
	return n
}

func (doc *Document) normalize() {
	switch doc.Kind {
	case KindEndpoint:
		doc.Endpoint.normalize()
	case KindDeployment:
		doc.Deployment.normalize()
	case KindModel:
		doc.Model.normalize()
	case KindEnvironment:
		doc.Environment.normalize()
	}
}

// sizeWarnings warns about an instance_type with no known size (unless a
// Kubernetes deployment sizes itself with resources).
func (doc *Document) sizeWarnings() []Notice {
	d := doc.Deployment
	if d == nil {
		return nil
	}
	var out []Notice
	if d.EndpointName == "" {
		out = append(out, Notice{Field: "name", Message: "endpoint_name is not set: give it with --endpoint-name when you create the deployment"})
	}
	if d.InstanceType == "" {
		return out
	}
	if _, _, ok := InstanceTypeResources(d.InstanceType); ok {
		return out
	}
	if d.IsKubernetes() && d.Resources != nil && d.Resources.Limits != nil {
		return out
	}
	return append(out, Notice{Field: "instance_type", Message: fmt.Sprintf(
		"instance_type %s: plumbline has no size for this instance type; instances run without CPU and memory limits", d.InstanceType)})
}

func (doc *Document) osWarnings() []Notice {
	e, field := doc.Environment, "os_type"
	if e == nil {
		e, field = doc.Deployment.Environment.Inline, "environment.os_type"
	}
	if lower(e.OSType) == "windows" {
		return []Notice{{Field: field, Message: field + " windows: plumbline runs Linux instances only"}}
	}
	return nil
}

// schemaName is the file name of a $schema URL, lower-cased and without
// ".schema.json": "managedonlineendpoint". Azure's two hosts
// (azuremlschemas.azureedge.net, azuremlsdk2.blob.core.windows.net) and
// versions (latest, 1.0.0…) all match.
func schemaName(url string) string {
	s := strings.ToLower(strings.TrimSpace(url))
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		s = s[i+1:]
	}
	s = strings.TrimSuffix(s, ".json")
	return strings.TrimSuffix(s, ".schema")
}

// schemaKind maps a $schema URL to a kind; "" for other schemas.
func schemaKind(url string) Kind {
	switch schemaName(url) {
	case "managedonlineendpoint", "kubernetesonlineendpoint":
		return KindEndpoint
	case "managedonlinedeployment", "kubernetesonlinedeployment":
		return KindDeployment
	case "model":
		return KindModel
	case "environment":
		return KindEnvironment
	}
	return ""
}

// detectKind decides what the document is: by $schema, else by the caller's
// expectation, else by its keys.
func (t *tree) detectKind(expect Kind) (Kind, error) {
	keys := map[string]*yaml.Node{}
	for i := 0; i+1 < len(t.root.Content); i += 2 {
		keys[t.root.Content[i].Value] = t.root.Content[i+1]
	}
	if s, ok := keys["$schema"]; ok && s.Kind == yaml.ScalarNode && s.Value != "" {
		k := schemaKind(s.Value)
		switch {
		case k == "":
			return "", Errors{t.problemAt(s, "$schema", "%s is not an online endpoint, online deployment, model or environment schema", quote(s.Value))}
		case expect != "" && k != expect:
			return "", Errors{t.problemAt(s, "$schema", "this is %s file ($schema %s), but %s file was expected", article(k), s.Value[strings.LastIndexByte(s.Value, '/')+1:], article(expect))}
		}
		return k, nil
	}
	if expect != "" {
		return expect, nil
	}
	has := func(names ...string) bool {
		for _, n := range names {
			if _, ok := keys[n]; ok {
				return true
			}
		}
		return false
	}
	switch {
	case has("endpoint_name", "instance_type", "instance_count", "code_configuration", "environment", "model", "request_settings", "liveness_probe", "readiness_probe", "scale_settings"):
		return KindDeployment, nil
	case has("channels", "dependencies"):
		return KindConda, nil
	case has("auth_mode", "traffic", "mirror_traffic", "identity", "public_network_access", "compute"):
		return KindEndpoint, nil
	case has("image", "build", "inference_config", "conda_file"):
		return KindEnvironment, nil
	case has("path"):
		return KindModel, nil
	}
	return "", Errors{{File: t.file, Message: "cannot tell whether this is an endpoint, deployment, model or environment file; add $schema, " +
		"for example $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json"}}
}

func article(k Kind) string {
	switch k {
	case KindEndpoint, KindEnvironment:
		return "an " + string(k)
	}
	return "a " + string(k)
}
