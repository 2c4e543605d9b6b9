# Endpoints for the supervisor's fault tests: slow, runaway, memory-hungry.

#* @get /live
function() "alive"

#* Ready once the file READY_FILE names exists (when it names one).
#* @get /ready
function(res) {
  f <- Sys.getenv("READY_FILE")
  if (nzchar(f) && !file.exists(f)) {
    res$status <- 503
    return("not yet")
  }
  "ready"
}

#* @serializer unboxedJSON
#* @get /pid
function() list(pid = Sys.getpid())

#* Sleeps; the test cancels or kills it.
#* @serializer unboxedJSON
#* @get /slow
function(s = "30") {
  Sys.sleep(as.numeric(s))
  list(slept = as.numeric(s))
}

#* Never returns: a runaway loop.
#* @get /spin
function() {
  repeat {
    x <- sum(runif(1000))
  }
}

#* Keeps about 200 MB alive in the worker.
#* @serializer unboxedJSON
#* @get /grow
function() {
  hoard <<- c(if (exists("hoard")) hoard else NULL, list(runif(25e6)))
  list(pid = Sys.getpid(), chunks = length(hoard))
}

#* Quits R, as a script might on a fatal condition.
#* @get /quit
function() {
  quit(save = "no", status = 3)
}

#* Writes and reads a temporary file (as the png serializer does).
#* @serializer unboxedJSON
#* @get /tempfile
function() {
  f <- tempfile()
  writeLines("x", f)
  on.exit(unlink(f))
  list(ok = file.exists(f))
}
