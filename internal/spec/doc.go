// Package spec parses and validates the YAML (or JSON) files users write for
// plumbline: Azure ML's managed and Kubernetes online endpoint and deployment
// files, model files, environment files and conda files, with the same field
// names, defaults and validation rules as Azure (see
// reference/azure-online-endpoints.md §1–§3), plus plumbline's own, clearly
// named extension blocks (`plumbline:`).
//
// It owns:
//   - the typed documents (Endpoint, Deployment, Model, Environment) and the
//     references between them (ModelRef, EnvironmentRef);
//   - strict decoding: an unknown or mistyped key anywhere is an error naming
//     file:line:column, the field path and the nearest known key;
//   - `--set a.b=c` overrides (ApplySets) and `--traffic "blue=90 green=10"`
//     parsing (ParseTraffic);
//   - validation (Validate on each type, errors as Errors, one line per
//     Problem) and defaults in one place (Defaulted on each type);
//   - the enumeration and rewriting of local paths (LocalPaths), so the CLI
//     can upload each and replace it with its sha256 digest;
//   - the table of Azure VM sizes (InstanceTypeResources).
//
// Accepted but ignored fields (Azure-only settings, read-only fields of
// `show` output) are reported as Notices; things that will probably not do
// what the user expects (a local path that does not exist, an instance type
// with no known size) are reported as Warnings. Neither is an error.
//
// # The generic environment extension
//
// An environment may carry a `plumbline:` block:
//
//	plumbline:
//	  runtime: generic          # or plumber
//	  command: [python, -m, http.server, "{port}"]
//
// runtime "plumber" runs an R plumber API the way Azure's start_plumber.R
// does; runtime "generic" runs any HTTP scoring server given by command. The
// server receives its port in the PORT environment variable; the command's
// placeholders {port}, {model_dir} and {code_dir} are expanded
// (EnvironmentExtension.ExpandCommand). One of image, build or
// plumbline.command is required in an environment.
//
// Probe initial_delay: Azure's minimum is 1 second; plumbline also accepts 0,
// meaning "probe at once".
//
// This package imports nothing else from plumbline: every other package
// may import it.
package spec
