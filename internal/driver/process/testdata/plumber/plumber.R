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

#* Writes log (if any) as one line to the log; reports the named variables.
#* @post /score
#* @serializer unboxedJSON
function(env = character(), log = "") {
  if (nzchar(log)) message(log)
  out <- lapply(env, Sys.getenv)
  names(out) <- env
  out
}
