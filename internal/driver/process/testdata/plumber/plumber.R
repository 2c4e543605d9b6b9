# The drivertest scoring contract as a plumber API (see package drivertest):
# the conformance suite runs the process driver on it through the launcher.

#* Liveness check
#* @get /live
function() {
  "alive"
}

#* Readiness check
#* @get /ready
function() {
  "ready"
}

#* Writes log (if any) as one line to the log, as it is (cat to stderr: the
#* launcher's handlers prefix a request's message() with a timestamp and the
#* request id); reports the named variables.
#* @post /score
#* @serializer unboxedJSON
function(env = character(), log = "") {
  if (nzchar(log)) cat(log, "\n", sep = "", file = stderr())
  out <- lapply(env, Sys.getenv)
  names(out) <- env
  out
}
