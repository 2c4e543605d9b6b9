package plumber

import (
	_ "embed"
	"strings"
)

// HandlersR is the R code of plumbline_install_handlers(pr): the error
// handler that puts R's error, the request id and the deployment in the
// response body, and the calling handlers that write each error, warning
// and message of a request to the instance log with a timestamp and the
// request id (docs/runtime.md, "When R fails while scoring"). Every R
// runtime evaluates it and calls plumbline_install_handlers(pr) once the
// router is plumbed.
//
//go:embed handlers.R
var HandlersR string

// Environment variables the handlers read.
const (
	// EnvErrorDetail is "true" or "false": whether an R error's message,
	// call and class go to the caller.
	EnvErrorDetail = "PLUMBLINE_ERROR_DETAIL"
	// EnvEndpoint and EnvDeployment name what the instance serves.
	EnvEndpoint   = "PLUMBLINE_ENDPOINT"
	EnvDeployment = "PLUMBLINE_DEPLOYMENT"
)

// Launcher returns R code, for `Rscript -e`, that does what the seed's
// docker-context/start_plumber.R does, so the seed's folder deploys unchanged
// without its container:
//
//	entry_script_path <- paste0(Sys.getenv('AML_APP_ROOT'),'/', Sys.getenv('AZUREML_ENTRY_SCRIPT'))
//	pr <- plumber::plumb(entry_script_path)
//	args <- list(host = '0.0.0.0', port = 8000)
//	if (packageVersion('plumber') >= '1.0.0') pr$setDocs(TRUE) else args$swagger <- TRUE
//	do.call(pr$run, args)
//
// Three things differ, all on purpose. The server listens on host (the
// process driver's bind address, not every interface) and on the port in
// the PORT environment variable (the driver assigns each instance its own,
// where the container used the fixed 8000). When plumb() fails, for
// instance on a syntax error in plumber.R, the launcher writes the script's
// path and R's own error text to stderr and exits with status 1, so the
// instance log says why and the driver reports the instance Exited. And
// plumbline's handlers (HandlersR) are installed on the router: an R error
// while scoring reaches the caller, and the log, with the request id.
func Launcher(host string) string {
	return strings.Join([]string{
		HandlersR,
		`entry_script_path <- paste0(Sys.getenv('AML_APP_ROOT'), '/', Sys.getenv('AZUREML_ENTRY_SCRIPT'))`,
		`pr <- tryCatch(plumber::plumb(entry_script_path), error = function(e) {`,
		`  message('plumbline: plumber could not load ', entry_script_path, ': ', conditionMessage(e))`,
		`  quit(save = 'no', status = 1)`,
		`})`,
		`plumbline_install_handlers(pr)`,
		`args <- list(host = ` + rString(host) + `, port = as.integer(Sys.getenv('PORT')))`,
		`if (packageVersion('plumber') >= '1.0.0') {`,
		`  pr$setDocs(TRUE)`,
		`} else {`,
		`  args$swagger <- TRUE`,
		`}`,
		`do.call(pr$run, args)`,
	}, "\n")
}

// rString quotes s as an R single-quoted string literal.
func rString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`, "\r", `\r`)
	return "'" + r.Replace(s) + "'"
}
