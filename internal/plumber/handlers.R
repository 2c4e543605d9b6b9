# plumbline's R handlers for a plumber router, shared by every R runtime
# plumbline runs (plumber's own server through the launcher, and the lean
# runtime). docs/runtime.md ("When R fails while scoring") documents what
# they produce; keep the two in step.
#
# plumbline_install_handlers(pr) does two things, without touching the
# user's plumber.R:
#
# 1. When the router still has plumber's default error handler (plumber.R
#    did not set its own with pr_set_error()), it sets one that answers
#    plumber's own body, {"error": "500 - Internal server error"}, extended
#    with the request id and the deployment and, when PLUMBLINE_ERROR_DETAIL
#    is true, with R's condition: message, call and class. Clients of
#    plumber's default body keep working; the gateway passes the body through
#    in its 424.
# 2. It writes one line to stderr (the instance log) for every error, and for
#    every warning or message R signals while a request runs, each starting
#    with a UTC timestamp and the request's x-request-id, so that
#    `get-logs | grep <request id>` finds what happened to a request.
#
# Settings come from the environment plumbline gives every R instance:
# PLUMBLINE_ERROR_DETAIL (true/false), PLUMBLINE_ENDPOINT and
# PLUMBLINE_DEPLOYMENT.
plumbline_install_handlers <- function(pr) {
  detail <- tolower(Sys.getenv("PLUMBLINE_ERROR_DETAIL", "true")) %in% c("true", "1", "yes", "on")
  endpoint <- Sys.getenv("PLUMBLINE_ENDPOINT")
  deployment <- Sys.getenv("PLUMBLINE_DEPLOYMENT")

  error_handler <- function(req, res, err) {
    status <- res$status
    body <- list()
    if (is.null(status) || status == 200L) {
      res$status <- 500L
      body$error <- "500 - Internal server error"
    } else {
      body$error <- "Internal error"
    }
    msg <- tryCatch(conditionMessage(err), error = function(e) as.character(err))
    cl <- plumbline_call_text(err)
    plumbline_log_line(req, "ERROR", paste0(
      "R error answered with status ", res$status, ": ",
      if (!is.null(cl)) paste0("in ", cl, ": ") else "", msg,
      " [", paste(class(err), collapse = "/"), "]"))
    if (detail) {
      body$message <- trimws(msg)
      if (!is.null(cl)) body$call <- cl
      body$class <- I(class(err))
    }
    body$request_id <- plumbline_request_id(req)
    if (nzchar(endpoint)) body$endpoint <- endpoint
    if (nzchar(deployment)) body$deployment <- deployment
    body$log <- if (detail) {
      "the instance log has this error under the request id"
    } else {
      "R's error message is hidden (plumbline.error_detail is false); the instance log has it under the request id"
    }
    res$serializer <- plumber::serializer_unboxed_json()
    res$setHeader("Content-Type", "application/json")
    body
  }

  private <- pr$.__enclos_env__$private
  current <- private$errorHandler
  default <- plumber:::defaultErrorHandler()
  if (is.null(current) || identical(body(current), body(default))) {
    pr$setErrorHandler(error_handler)
  }

  # Warnings and messages R signals while routing a request are logged with
  # the request's id, instead of R's bare "Warning in f(): ..." lines.
  # plumber's server calls pr$route(req, res) for every request (callbacks
  # from httpuv run without R's global calling handlers, so the handlers
  # wrap the call itself).
  route <- pr$route
  wrapped <- function(req, res) plumbline_with_request_log(req, route(req, res))
  locked <- bindingIsLocked("route", pr)
  if (locked) unlockBinding("route", pr)
  assign("route", wrapped, envir = pr)
  if (locked) lockBinding("route", pr)
  invisible(pr)
}

# plumbline_with_request_log(req, expr) evaluates expr, writing each warning
# and message it signals to stderr as one line with a timestamp and req's
# x-request-id. A runtime that routes requests without pr$route wraps its
# own call in it.
plumbline_with_request_log <- function(req, expr) {
  withCallingHandlers(expr,
    warning = function(w) {
      cl <- plumbline_call_text(w)
      plumbline_log_line(req, "WARNING", paste0(if (!is.null(cl)) paste0("in ", cl, ": ") else "", conditionMessage(w)))
      invokeRestart("muffleWarning")
    },
    message = function(m) {
      plumbline_log_line(req, "MESSAGE", conditionMessage(m))
      invokeRestart("muffleMessage")
    })
}

# plumbline_log_line writes one line about req to stderr: a UTC timestamp,
# the level, the request's x-request-id, method and path, and text on one
# line.
plumbline_log_line <- function(req, level, text) {
  cat(format(Sys.time(), "%Y-%m-%dT%H:%M:%OS3Z", tz = "UTC"), " ", level,
      " x-request-id=", plumbline_request_id(req), " ",
      req$REQUEST_METHOD, " ", req$PATH_INFO, ": ",
      gsub("[\r\n]+", " | ", trimws(paste(text, collapse = " "))), "\n",
      sep = "", file = stderr())
}

plumbline_request_id <- function(req) {
  id <- if (is.environment(req)) req$HTTP_X_REQUEST_ID else NULL
  if (is.null(id) || !nzchar(id)) "-" else id
}

plumbline_call_text <- function(cond) {
  cl <- conditionCall(cond)
  if (is.null(cl)) return(NULL)
  gsub("[\r\n]+", " ", deparse(cl, nlines = 1L, width.cutoff = 200L))
}
