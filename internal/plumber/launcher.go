package plumber

import "strings"

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
// Two things differ, both on purpose. The server listens on host (the process
// driver's bind address, not every interface) and on the port in the PORT
// environment variable (the driver assigns each instance its own, where the
// container used the fixed 8000). And when plumb() fails, for instance on a
// syntax error in plumber.R, the launcher writes the script's path and R's
// own error text to stderr and exits with status 1, so the instance log says
// why and the driver reports the instance Exited.
func Launcher(host string) string {
	return strings.Join([]string{
		`entry_script_path <- paste0(Sys.getenv('AML_APP_ROOT'), '/', Sys.getenv('AZUREML_ENTRY_SCRIPT'))`,
		`pr <- tryCatch(plumber::plumb(entry_script_path), error = function(e) {`,
		`  message('plumbline: plumber could not load ', entry_script_path, ': ', conditionMessage(e))`,
		`  quit(save = 'no', status = 1)`,
		`})`,
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
