// Package container is the Azure ML scoring-container contract that every
// container driver applies (driver/docker now; a Kubernetes driver reuses
// it): where the model and the code are mounted, the environment the
// scoring server gets, the labels that identify an instance's container,
// and the image tag of a build.
//
// The contract, from Azure's managed online endpoints:
//
//	model  read-only at <model_mount_path>/<model name>/<version>
//	       (default /var/azureml-app/azureml-models/<name>/<version>) = AZUREML_MODEL_DIR;
//	       the registered path's basename is kept beneath it ($AZUREML_MODEL_DIR/models/crate.bin)
//	code   read-only at /var/azureml-app/<code folder> = AML_APP_ROOT
//	       AZUREML_ENTRY_SCRIPT = the scoring script, relative to AML_APP_ROOT
//	env    the user's environment_variables last: a user value wins
//	ports  the inference_config ports, published on the loopback only
//
// This package may import driver; it must not import the store, the
// registry, the reconciler or the gateway.
package container

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/plumbline/plumbline/internal/driver"
)

const (
	// AppRoot is where Azure puts the scoring code's folder.
	AppRoot = "/var/azureml-app"
	// DefaultModelMountPath is model_mount_path's default.
	DefaultModelMountPath = AppRoot + "/azureml-models"
)

// Labels every plumbline container carries. Owner is the data dir's server
// id: a server only ever touches containers with its own owner label.
const (
	LabelInstance   = "plumbline.instance"
	LabelEndpoint   = "plumbline.endpoint"
	LabelDeployment = "plumbline.deployment"
	LabelTemplate   = "plumbline.template"
	LabelOwner      = "plumbline.owner"
)

// Mount is a host folder mounted read-only in the container.
type Mount struct {
	Host      string
	Container string
}

// Layout is how one instance's container is laid out.
type Layout struct {
	// Model and Code are nil when the instance has no model or no code.
	Model, Code *Mount
	// Env is KEY=VALUE, sorted by key: the AZUREML_* variables, then the
	// user's environment_variables over them.
	Env []string
}

// ModelDir is AZUREML_MODEL_DIR for a model name and version under
// mountPath ("" means DefaultModelMountPath).
func ModelDir(mountPath, name, version string) string {
	if mountPath == "" {
		mountPath = DefaultModelMountPath
	}
	return path.Join(mountPath, name, version)
}

// CodeDir is AML_APP_ROOT for a code folder on the host: /var/azureml-app/
// followed by the folder's name.
func CodeDir(hostCodeDir string) string {
	return path.Join(AppRoot, path.Base(strings.TrimRight(hostCodeDir, "/")))
}

// For lays out spec's container.
func For(spec driver.InstanceSpec) Layout {
	var l Layout
	env := map[string]string{}
	if spec.ModelDir != "" {
		name, version := spec.ModelName, spec.ModelVersion
		if name == "" {
			name = "model"
		}
		if version == "" {
			version = "1"
		}
		l.Model = &Mount{Host: spec.ModelDir, Container: ModelDir(spec.ModelMountPath, name, version)}
		env["AZUREML_MODEL_DIR"] = l.Model.Container
	}
	if spec.CodeDir != "" {
		l.Code = &Mount{Host: spec.CodeDir, Container: CodeDir(spec.CodeDir)}
		env["AML_APP_ROOT"] = l.Code.Container
		env["AZUREML_ENTRY_SCRIPT"] = spec.EntryScript
	}
	if spec.Runtime == driver.RuntimeGeneric && spec.Port > 0 {
		env["PORT"] = strconv.Itoa(spec.Port) // as the process driver gives it
	}
	for k, v := range spec.Env {
		env[k] = v
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		l.Env = append(l.Env, k+"="+env[k])
	}
	return l
}

// Command is spec.Command with its placeholders expanded for the container:
// {port} is the container port, {model_dir} and {code_dir} the mounted
// paths.
func (l Layout) Command(spec driver.InstanceSpec) []string {
	model, code := "", ""
	if l.Model != nil {
		model = l.Model.Container
	}
	if l.Code != nil {
		code = l.Code.Container
	}
	r := strings.NewReplacer("{port}", strconv.Itoa(spec.Port), "{model_dir}", model, "{code_dir}", code)
	out := make([]string, len(spec.Command))
	for i, a := range spec.Command {
		out[i] = r.Replace(a)
	}
	return out
}

// Labels are the labels of spec's container for a server whose id is owner.
func Labels(spec driver.InstanceSpec, owner string) map[string]string {
	return map[string]string{
		LabelInstance:   spec.ID,
		LabelEndpoint:   spec.Endpoint,
		LabelDeployment: spec.Deployment,
		LabelTemplate:   spec.Template,
		LabelOwner:      owner,
	}
}

// BuildTag is the image tag of an environment built from the build context
// with this artifact digest ("sha256:<hex>") and Dockerfile (its path in the
// context): the same context always gives the same tag, so a build is done
// once and found again.
func BuildTag(contextDigest, dockerfile string) string {
	sum := sha256.Sum256([]byte(contextDigest + "\x00" + dockerfile))
	return "plumbline/build:" + hex.EncodeToString(sum[:8])
}
