package spec

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// RefKind says which form a deployment's model or environment takes.
type RefKind string

const (
	// RefInline is an inline object (model: {name, path} or environment:
	// {image, …}); the value is in Inline.
	RefInline RefKind = "inline"
	// RefRegistered names an asset in plumbline's registry:
	// azureml:<name>:<version>, azureml:<name>@<label>, azureml:<name>
	// (Azure's default: the latest version), or the long ARM form
	// azureml:/subscriptions/…/models/<name>/versions/<v>.
	RefRegistered RefKind = "registered"
	// RefRegistry names an asset in a shared registry:
	// azureml://registries/<registry>/models/<name>/versions/<v> or
	// …/labels/<label>.
	RefRegistry RefKind = "registry"
	// RefLocalPath is a file or folder on this machine (models only).
	RefLocalPath RefKind = "local_path"
	// RefDigest is plumbline's already-uploaded artifact, sha256:<64 hex>
	// (models only): what the CLI writes after uploading a local path.
	RefDigest RefKind = "digest"
)

// ModelRef is a deployment's model: a string reference or an inline model.
// It marshals to JSON as it was written: the string, or the inline object.
type ModelRef struct {
	// Raw is the string as written ("" for an inline model).
	Raw string
	// Kind is the form of the reference.
	Kind RefKind
	// Name of a registered or registry model; "" for other kinds.
	Name string
	// Version of a registered or registry model; "" means Label applies.
	Version string
	// Label such as "latest" when the reference has no version;
	// azureml:<name> alone means "latest".
	Label string
	// Registry is the registry name of a RefRegistry reference.
	Registry string
	// Path is the local path of a RefLocalPath reference.
	Path string
	// Digest is "sha256:<hex>" for a RefDigest reference.
	Digest string
	// Inline is the model of a RefInline reference; nil otherwise.
	Inline *Model
}

// EnvironmentRef is a deployment's environment: a string reference or an
// inline environment. It marshals to JSON as it was written.
type EnvironmentRef struct {
	// Raw is the string as written ("" for an inline environment).
	Raw string
	// Kind is RefRegistered, RefRegistry or RefInline.
	Kind RefKind
	// Name, Version, Label and Registry are as in ModelRef.
	Name     string
	Version  string
	Label    string
	Registry string
	// Inline is the environment of a RefInline reference; nil otherwise.
	Inline *Environment
}

// assetRef is the parsed string form shared by models and environments.
type assetRef struct {
	kind                           RefKind
	name, version, label, registry string
	path, digest                   string
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-fA-F]{64}$`)

// ParseModelRef parses a deployment's string model reference:
// azureml:<name>:<version>, azureml:<name>@<label>, azureml:<name>, the ARM
// form azureml:/subscriptions/…/models/<name>/versions/<v>,
// azureml://registries/<reg>/models/<name>/versions/<v> (or /labels/<l>),
// sha256:<64 hex>, or a local path (anything without a URL scheme).
func ParseModelRef(s string) (ModelRef, error) {
	a, err := parseAssetRef("model", s)
	if err != nil {
		return ModelRef{}, err
	}
	return ModelRef{Raw: s, Kind: a.kind, Name: a.name, Version: a.version, Label: a.label,
		Registry: a.registry, Path: a.path, Digest: a.digest}, nil
}

// ParseEnvironmentRef parses a deployment's string environment reference:
// azureml:<name>:<version>, azureml:<name>@<label>, the ARM form, or
// azureml://registries/<reg>/environments/<name>/versions/<v> (or
// /labels/<l>).
func ParseEnvironmentRef(s string) (EnvironmentRef, error) {
	a, err := parseAssetRef("environment", s)
	if err != nil {
		return EnvironmentRef{}, err
	}
	if a.kind == RefLocalPath || a.kind == RefDigest {
		return EnvironmentRef{}, fmt.Errorf("%s is not an environment reference; write azureml:<name>:<version>, azureml:<name>@latest, "+
			"azureml://registries/<registry>/environments/<name>/versions/<version>, or an inline environment (image: …)", quote(s))
	}
	return EnvironmentRef{Raw: s, Kind: a.kind, Name: a.name, Version: a.version, Label: a.label, Registry: a.registry}, nil
}

func parseAssetRef(asset, s string) (assetRef, error) {
	plural := asset + "s"
	forms := fmt.Sprintf("azureml:<name>:<version>, azureml:<name>@latest or azureml://registries/<registry>/%s/<name>/versions/<version>", plural)
	switch {
	case strings.TrimSpace(s) == "":
		return assetRef{}, fmt.Errorf("empty %s reference; write %s", asset, forms)
	case strings.HasPrefix(s, "sha256:"):
		if !digestRE.MatchString(s) {
			return assetRef{}, fmt.Errorf("%s is not a digest: sha256: must be followed by 64 hex digits", quote(s))
		}
		return assetRef{kind: RefDigest, digest: strings.ToLower(s)}, nil
	case strings.HasPrefix(s, "azureml://"):
		segs := strings.Split(strings.TrimPrefix(s, "azureml://"), "/")
		if len(segs) >= 1 && segs[0] == "registries" {
			a, ok := assetPath(segs, plural)
			if ok && len(segs) >= 2 && segs[1] != "" && strings.EqualFold(segs[2], plural) {
				a.kind, a.registry = RefRegistry, segs[1]
				return a, checkAsset(asset, s, a)
			}
		}
		return assetRef{}, fmt.Errorf("%s is not a %s reference; write %s (a datastore or job URI belongs in an inline %s's path)", quote(s), asset, forms, asset)
	case strings.HasPrefix(s, "azureml:/"):
		segs := strings.Split(strings.TrimPrefix(s, "azureml:/"), "/")
		for i := range segs {
			if strings.EqualFold(segs[i], plural) {
				if a, ok := assetPath(segs[i:], plural); ok {
					a.kind = RefRegistered
					return a, checkAsset(asset, s, a)
				}
			}
		}
		return assetRef{}, fmt.Errorf("%s: the long form is azureml:/subscriptions/…/%s/<name>/versions/<version>", quote(s), plural)
	case strings.HasPrefix(s, "azureml:"):
		rest := strings.TrimPrefix(s, "azureml:")
		a := assetRef{kind: RefRegistered}
		if name, label, ok := strings.Cut(rest, "@"); ok {
			a.name, a.label = name, label
			if label == "" {
				return assetRef{}, fmt.Errorf("%s: the label after @ is empty; write azureml:<name>@latest", quote(s))
			}
		} else if name, version, ok := strings.Cut(rest, ":"); ok {
			a.name, a.version = name, version
		} else {
			a.name, a.label = rest, "latest"
		}
		return a, checkAsset(asset, s, a)
	case schemeRE.MatchString(s):
		return assetRef{}, fmt.Errorf("%s is a URI, not a %s reference; write %s, or an inline %s with path: <uri>", quote(s), asset, forms, asset)
	}
	return assetRef{kind: RefLocalPath, path: s}, nil
}

// assetPath reads "<plural>/<name>/versions/<v>" or "…/labels/<l>" from the
// start of segs (after an optional "registries/<reg>/" prefix).
func assetPath(segs []string, plural string) (assetRef, bool) {
	if len(segs) >= 2 && segs[0] == "registries" {
		segs = segs[2:]
	}
	if len(segs) != 4 || !strings.EqualFold(segs[0], plural) {
		return assetRef{}, false
	}
	a := assetRef{name: segs[1]}
	switch strings.ToLower(segs[2]) {
	case "versions":
		a.version = segs[3]
	case "labels":
		a.label = segs[3]
	default:
		return assetRef{}, false
	}
	return a, true
}

func checkAsset(asset, s string, a assetRef) error {
	if err := ValidateName(asset, a.name); err != nil {
		return fmt.Errorf("%s: %w", quote(s), err)
	}
	if a.version != "" || a.label == "" {
		if err := validateVersion(a.version); err != nil {
			return fmt.Errorf("%s: %w", quote(s), err)
		}
	}
	if a.label != "" {
		if err := validateVersion(a.label); err != nil {
			return fmt.Errorf("%s: label %s is not valid", quote(s), quote(a.label))
		}
	}
	return nil
}

// String is the reference as written, or "inline model <name>".
func (r ModelRef) String() string {
	if r.Inline != nil {
		return "inline model " + r.Inline.Name
	}
	return r.Raw
}

// String is the reference as written, or "inline environment <name>".
func (r EnvironmentRef) String() string {
	if r.Inline != nil {
		return "inline environment " + r.Inline.Name
	}
	return r.Raw
}

// MarshalJSON writes the string form, or the inline model.
func (r ModelRef) MarshalJSON() ([]byte, error) {
	if r.Inline != nil {
		return json.Marshal(r.Inline)
	}
	return json.Marshal(r.Raw)
}

// UnmarshalJSON reads a string reference or an inline model object. It is
// lenient, so that any value MarshalJSON wrote reads back: a string that
// is not a valid reference is kept in Raw with an empty Kind, and Validate
// reports it. Strict checks belong to Parse and Validate.
func (r *ModelRef) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		ref, err := ParseModelRef(s)
		if err != nil {
			ref = ModelRef{Raw: s}
		}
		*r = ref
		return nil
	}
	var m Model
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("model: want a reference string or an inline model: %w", err)
	}
	*r = ModelRef{Kind: RefInline, Inline: &m}
	return nil
}

// MarshalJSON writes the string form, or the inline environment.
func (r EnvironmentRef) MarshalJSON() ([]byte, error) {
	if r.Inline != nil {
		return json.Marshal(r.Inline)
	}
	return json.Marshal(r.Raw)
}

// UnmarshalJSON reads a string reference or an inline environment object,
// leniently, as ModelRef.UnmarshalJSON does.
func (r *EnvironmentRef) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		ref, err := ParseEnvironmentRef(s)
		if err != nil {
			ref = EnvironmentRef{Raw: s}
		}
		*r = ref
		return nil
	}
	var e Environment
	if err := json.Unmarshal(b, &e); err != nil {
		return fmt.Errorf("environment: want a reference string or an inline environment: %w", err)
	}
	*r = EnvironmentRef{Kind: RefInline, Inline: &e}
	return nil
}

func (r *ModelRef) unmarshalNode(d *decoder, path string, n *yaml.Node) {
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
		ref, err := ParseModelRef(n.Value)
		if err != nil {
			d.fail(n, path, "%v", err)
			return
		}
		*r = ref
	case n.Kind == yaml.MappingNode:
		m := new(Model)
		d.decodeStruct(path, n, reflect.ValueOf(m).Elem())
		*r = ModelRef{Kind: RefInline, Inline: m}
	default:
		d.unexpected(path, n, "a model reference (azureml:<name>:<version>) or an inline model (name, path)")
	}
}

func (r *EnvironmentRef) unmarshalNode(d *decoder, path string, n *yaml.Node) {
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
		ref, err := ParseEnvironmentRef(n.Value)
		if err != nil {
			d.fail(n, path, "%v", err)
			return
		}
		*r = ref
	case n.Kind == yaml.MappingNode:
		e := new(Environment)
		d.decodeStruct(path, n, reflect.ValueOf(e).Elem())
		*r = EnvironmentRef{Kind: RefInline, Inline: e}
	default:
		d.unexpected(path, n, "an environment reference (azureml:<name>:<version>) or an inline environment (image, inference_config…)")
	}
}

// setPath rewrites a local-path or digest reference (the CLI's upload).
func (r *ModelRef) setPath(v string) {
	if ref, err := ParseModelRef(v); err == nil {
		*r = ref
		return
	}
	*r = ModelRef{Raw: v, Kind: RefLocalPath, Path: v}
}
