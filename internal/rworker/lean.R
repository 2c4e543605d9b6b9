# lean.R: the R side of plumbline's lean R runtime.
#
# `plumbline rworker` (package internal/rworker) runs this file with Rscript.
# It plumbs the deployment's plumber.R once (so its top-level code, such as
# the seed's readRDS(... crate.bin), runs once), prepares the router the way
# plumber's own pr$run() does, then waits for commands on stdin. Each
# "fork <id>" forks a worker from this loaded session (copy-on-write: the
# model's memory is shared) that serves requests plumbline hands it over two
# named pipes, <dir>/<id>.in and <dir>/<id>.out, until the pipe closes.
#
# Frames, all integers unsigned 32-bit little-endian:
#   request   head length, body length, head, body. The head is UTF-8 lines:
#             method, path, query (without "?"), remote address, remote port,
#             server name, server port, then a header name (lower case) and
#             its value per pair of lines, then a line "." (so that empty
#             values at the end survive strsplit).
#   response  status, head length, body length, head, body. The head is a
#             header name and its value per pair of lines.
#   hello     0, pid, 0: the first thing a worker writes.
#
# Requests run through plumber's own router. By default through a compiled
# form of Plumber$serve()/$route() that does what they do, step for step,
# without their per-request closure machinery; a router whose hooks that
# form does not cover runs through pr$call() itself. The differential tests
# in internal/rworker hold both to plumber's own server.
#
# Settings come in PLUMBLINE_RLEAN_* environment variables, removed before
# the user's code runs. Messages for plumbline go to <dir>/zygote.out, one
# line each: "loaded <rss bytes> <max request bytes> <router> <fast paths>"
# (comma-separated, "-" for none),
# "unsupported <reason>", "forked <id> <pid>", "forkfailed <id>".
local({
  getenv_once <- function(name) {
    value <- Sys.getenv(name)
    Sys.unsetenv(name)
    value
  }
  dir <- getenv_once("PLUMBLINE_RLEAN_DIR")
  host <- getenv_once("PLUMBLINE_RLEAN_HOST")
  port <- as.integer(getenv_once("PLUMBLINE_RLEAN_PORT"))
  router_mode <- getenv_once("PLUMBLINE_RLEAN_ROUTER")
  # Diagnostics (plumbline rworker --timing, --rprof): stage timestamps in
  # every answer, and each worker's Rprof samples.
  timing <- nzchar(getenv_once("PLUMBLINE_RLEAN_TIMING"))
  rprof_file <- getenv_once("PLUMBLINE_RLEAN_RPROF")
  # The stage timestamps of the request being served (--timing): when the
  # router started parsing the body, called the handler, and got its value.
  stamps <- new.env(parent = emptyenv())
  clock <- function() as.numeric(Sys.time())

  ctl <- fifo(file.path(dir, "zygote.out"), "wb", blocking = TRUE)
  tell <- function(...) {
    writeLines(paste(...), ctl)
    flush(ctl)
  }

  entry_script_path <- paste0(Sys.getenv("AML_APP_ROOT"), "/", Sys.getenv("AZUREML_ENTRY_SCRIPT"))
  if (!requireNamespace("plumber", quietly = TRUE)) {
    message("plumbline: the R package plumber is not installed (Debian: apt-get install r-cran-plumber)")
    quit(save = "no", status = 1)
  }
  if (utils::packageVersion("plumber") < "1.0.0") {
    tell("unsupported plumber", as.character(utils::packageVersion("plumber")),
         "is older than 1.0.0, which the lean runtime needs")
    quit(save = "no", status = 0)
  }
  pr <- tryCatch(plumber::plumb(entry_script_path), error = function(e) {
    message("plumbline: plumber could not load ", entry_script_path, ": ", conditionMessage(e))
    quit(save = "no", status = 1)
  })
  # As the seed's start_plumber.R does.
  pr$setDocs(TRUE)
  # plumbline's error handler and request log (internal/plumber/handlers.R,
  # which the supervisor puts ahead of this script), as on plumber's own
  # server: an R error's body names R's error and the request id.
  if (exists("plumbline_install_handlers")) plumbline_install_handlers(pr)

  ns <- asNamespace("plumber")
  private_of <- function(o) o$.__enclos_env__$private
  P <- private_of(pr)

  # What plumber's own server does that this runtime cannot.
  if (length(P$hooks[["exit"]]) > 0) {
    tell("unsupported plumber.R registers an exit hook, which runs when plumber's own server stops")
    quit(save = "no", status = 0)
  }

  # What pr$run() does before it starts httpuv: the working directory is
  # the script's folder, the request size limit and debug flag are read,
  # and the OpenAPI document and visual docs are mounted.
  if (!is.null(P$filename)) setwd(dirname(P$filename))
  P$maxSize <- getOption("plumber.maxRequestSize", 0)
  pr$setDebug(pr$getDebug())
  docs_callback <- rlang::maybe_missing(P$docs_callback,
    getOption("plumber.docs.callback", getOption("plumber.swagger.url", NULL)))
  # The line plumber's own server logs, so that instance logs read the same.
  message("Running plumber API at ", ns$urlHost(host = host, port = port, changeHostLocation = FALSE))
  if (isTRUE(P$docs_info$enabled) && is.function(ns$mount_docs)) {
    ns$mount_docs(pr = pr, host = host, port = port, docs_info = P$docs_info,
                  callback = docs_callback, quiet = FALSE)
  }

  # ---- the compiled router --------------------------------------------------
  # Plumber$serve() and $route() run a request as a list of steps (hooks,
  # endpoints preempting each filter, filters, endpoints, mounts, 404/405,
  # serialization) built from new closures on every request. compile_router
  # walks the same steps in the same order with the same effects on req and
  # res, from lists built once. It needs the router to have no serve-level
  # hooks (preroute, postroute, preserialize, postserialize): with any, the
  # request goes through pr$call().
  # The compiled router's fast paths in use (reported to the supervisor).
  fast_paths <- character(0)
  compile_router <- function(pr) {
    P <- private_of(pr)
    globals <- ns$.globals
    exec_name <- ns$currentExecName
    getRelevantArgs <- ns$getRelevantArgs
    req_body_parser <- ns$req_body_parser
    req_body_args <- ns$req_body_args
    parseQS <- ns$parseQS
    parseCookies <- ns$parseCookies
    PlumberResponse <- ns$PlumberResponse
    is_405 <- ns$is_405
    router_has_route <- ns$router_has_route
    serializer_unboxed_json <- ns$serializer_unboxed_json
    default_filters <- ns$defaultPlumberFilters
    has_hooks <- function(o) length(unlist(private_of(o)$hooks, recursive = FALSE)) > 0
    regex_meta <- "[\\[\\].*+?^$(){}|\\\\]"

    endpoint <- function(h) {
      regex <- private_of(h)$regex
      inner <- sub("^\\^", "", sub("\\$$", "", regex$regex))
      static <- length(regex$names) == 0 && !grepl(regex_meta, inner, perl = TRUE) &&
        identical(regex$regex, paste0("^", inner, "$"))
      func <- private_of(h)$func
      fargs <- names(formals(func))
      # A function of req and res alone (or of nothing) gets no argument
      # from the body: plumber's getRelevantArgs() gives it req and res only.
      req_res_only <- !has_hooks(h) && all(fargs %in% c("req", "res"))
      list(obj = h, verbs = h$verbs, static = static, path = inner,
           path_params = if (static) h$getPathParams(inner) else NULL,
           func = func, envir = private_of(h)$envir, hooks = has_hooks(h),
           req_res_only = req_res_only, wants_req = "req" %in% fargs, wants_res = "res" %in% fargs)
    }
    filter <- function(fi) {
      f <- private_of(fi)$func
      kind <- "user"
      if (!is.null(fi$name) && fi$name %in% names(default_filters) &&
          identical(f, default_filters[[fi$name]]) && !has_hooks(fi)) {
        kind <- fi$name
      }
      list(obj = fi, name = fi$name, func = f, envir = private_of(fi)$envir,
           kind = kind, hooks = has_hooks(fi))
    }
    filts <- lapply(P$filts, filter)
    ends <- lapply(P$ends, function(group) lapply(group, endpoint))
    # Stages with no endpoint (most filters have none preempting them):
    # handle() would only set exec$forward, which the caller sets after.
    for (i in seq_along(filts)) filts[[i]]$has_ends <- length(ends[[filts[[i]]$name]]) > 0
    first_has_ends <- length(ends[["__first__"]]) > 0
    mnts <- P$mnts

    # The parser plumber picks for a body depends only on its content type
    # and the endpoint's parsers (and, without a content type, on the
    # body's first byte): it is picked once per endpoint and content type,
    # with plumber's own parser_picker, and called as plumber calls it.
    parser_picker <- ns$parser_picker
    # plumber's cleanup_content_type(): lower case, up to the first ";";
    # kept per spelling (bounded), as clients send the same one each time.
    type_keys <- new.env(parent = emptyenv())
    content_type_key <- function(type) {
      key <- type_keys[[type]]
      if (is.null(key)) {
        key <- tolower(strsplit(type, ";", fixed = TRUE)[[1]][1])
        if (length(type_keys) < 64L) assign(type, key, envir = type_keys)
      }
      key
    }
    pick_parser <- if (is.function(parser_picker)) {
      function(e, parsers, type, body) {
        key <- if (is.character(type) && length(type) == 1L && nzchar(type)) content_type_key(type)
        if (is.null(key) || is.na(key) || !nzchar(key)) return(parser_picker(type, body[1], NULL, parsers))
        cache <- e$parser_cache
        p <- cache[[key]]
        if (is.null(p)) {
          p <- parser_picker(key, body[1], NULL, parsers)
          # Bounded: a client choosing content types cannot grow it.
          if (!is.null(p) && length(cache) < 32L) cache[[key]] <- p
        }
        p
      }
    }
    for (stage in names(ends)) {
      for (i in seq_along(ends[[stage]])) ends[[stage]][[i]]$parser_cache <- new.env(parent = emptyenv())
    }
    # plumber's JSON parser as plumber makes it without arguments: its body
    # can be parsed when the handler first reads req$body (below).
    json_proto <- tryCatch(ns$parser_json(), error = function(e) NULL)
    is_plain_json_parser <- function(p) {
      if (!is.function(p) || !is.function(json_proto) || !identical(body(p), body(json_proto))) return(FALSE)
      fn <- environment(p)$parse_fn
      proto_fn <- environment(json_proto)$parse_fn
      is.function(fn) && is.function(proto_fn) && identical(body(fn), body(proto_fn)) &&
        identical(tryCatch(eval(quote(...length()), environment(fn)), error = function(e) -1L), 0L)
    }
    plain_json <- new.env(parent = emptyenv()) # parser picked → is plumber's plain JSON parser
    validate_json <- tryCatch(getExportedValue("jsonlite", "validate"), error = function(e) NULL)

    # A handler of req and res alone, a JSON body for plumber's own JSON
    # parser, and JSON that is valid: req$body, req$argsBody and req$args
    # are bound as promises, made as plumber makes them when first read.
    # Invalid JSON is parsed at once instead, so that plumber's parse error
    # (a 500 before the handler runs) is what the caller gets, as on
    # plumber's own server. TRUE when bound.
    lazy_body <- function(e, req, parsers) {
      if (is.null(pick_parser) || is.null(validate_json) || length(parsers) == 0) return(FALSE)
      raw_body <- req$bodyRaw
      if (!is.raw(raw_body) || length(raw_body) == 0L) return(FALSE)
      type <- req$HTTP_CONTENT_TYPE
      if (!is.character(type) || length(type) != 1L || !nzchar(type)) return(FALSE)
      parser <- pick_parser(e, parsers, type, raw_body)
      if (is.null(parser)) return(FALSE)
      ckey <- paste0("plain:", content_type_key(type))
      plain <- e$parser_cache[[ckey]]
      if (is.null(plain)) {
        plain <- is_plain_json_parser(parser)
        if (length(e$parser_cache) < 64L) assign(ckey, plain, envir = e$parser_cache)
      }
      if (!plain) return(FALSE)
      # rawToChar() fails on a nul byte: such a body is parsed at once.
      if (any(raw_body == as.raw(0L))) return(FALSE)
      txt <- rawToChar(raw_body)
      # validate() does not check UTF-8, which plumber's parse does.
      if (!validUTF8(txt) || !isTRUE(validate_json(txt))) return(FALSE)
      args_before <- req$args
      args_path <- req$argsPath
      delayedAssign("body", do.call(parser, list(value = raw_body, content_type = type, parsers = parsers)), assign.env = req)
      delayedAssign("argsBody", req_body_args(req), assign.env = req)
      delayedAssign("args", c(args_before, args_path, req$argsBody), assign.env = req)
      TRUE
    }

    # What plumber's req_body_parser() does, with the parser picked once.
    parse_request_body <- function(e, req, parsers) {
      if (length(parsers) == 0) return(NULL)
      body <- req$bodyRaw
      if (is.null(body)) return(NULL)
      if (is.null(pick_parser) || !is.raw(body)) return(req_body_parser(req, parsers))
      if (length(body) == 0L) return(list())
      type <- req$HTTP_CONTENT_TYPE
      parser <- pick_parser(e, parsers, type, body)
      # No suitable parser: plumber's own path says so and answers list().
      if (is.null(parser)) return(req_body_parser(req, parsers))
      do.call(parser, list(value = body, content_type = type, parsers = parsers))
    }

    # plumber's json and unboxedJSON serializers made with default
    # arguments (serializer_json(), serializer_unboxed_json(), the
    # @serializer json / unboxedJSON tags) call jsonlite's toJSON() through
    # three closures, two tryCatch() layers, toJSON()'s eight match.arg()
    # calls and R6's toResponse(). For those, serialize_json() does the same
    # with toJSON()'s arguments resolved once, from its formals, and calls
    # jsonlite's asJSON() as toJSON() does. It is used only when its output
    # matched toJSON()'s on probe values at start-up; any other serializer,
    # or an attachment, goes through the serializer itself.
    json_ser_proto <- tryCatch(ns$serializer_json(), error = function(e) NULL)
    json_as <- tryCatch(get("asJSON", envir = asNamespace("jsonlite")), error = function(e) NULL)
    json_args <- tryCatch(local({
      fm <- formals(getExportedValue("jsonlite", "toJSON"))
      choice <- function(n) eval(fm[[n]], baseenv())[[1]]
      a <- list(dataframe = choice("dataframe"), Date = choice("Date"), POSIXt = choice("POSIXt"),
                factor = choice("factor"), complex = choice("complex"), raw = choice("raw"),
                matrix = choice("matrix"), digits = eval(fm$digits, baseenv()), na = NULL,
                null = choice("null"), force = eval(fm$force, baseenv()),
                indent = if (isTRUE(eval(fm$pretty, baseenv()))) 0L else NA_integer_)
      if (!is.character(unlist(a[c("dataframe", "Date", "POSIXt", "factor", "complex", "raw", "matrix", "null")])) ||
          !isFALSE(eval(fm$pretty, baseenv())) || !isFALSE(eval(fm$auto_unbox, baseenv()))) stop("unexpected toJSON() formals")
      a
    }), error = function(e) NULL)
    get_character_set <- ns$get_character_set
    # TRUE or FALSE (its auto_unbox) when ser is plumber's default JSON
    # serializer, NA when it is anything else.
    json_unbox_of_serializer <- function(ser) {
      proto <- json_ser_proto
      if (!is.function(proto) || !is.function(ser) || !identical(body(ser), body(proto)) ||
          !identical(formals(ser), formals(proto))) return(NA)
      env <- environment(ser)
      if (!identical(env$headers, list(`Content-Type` = "application/json"))) return(NA)
      fn <- env$serialize_fn
      proto_fn <- environment(proto)$serialize_fn
      if (!is.function(fn) || !is.function(proto_fn) || !identical(body(fn), body(proto_fn)) ||
          !identical(formals(fn), formals(proto_fn))) return(NA)
      dots <- tryCatch(evalq(list(...), environment(fn)), error = function(e) NULL)
      if (!is.list(dots)) return(NA)
      if (length(dots) == 0L) return(FALSE)
      if (identical(names(dots), "auto_unbox") && (isTRUE(dots[[1]]) || isFALSE(dots[[1]]))) return(dots[[1]])
      NA
    }
    json_body <- function(value, unbox) {
      out <- do.call(json_as, c(list(value), json_args, list(auto_unbox = unbox)))
      class(out) <- "json"
      out
    }
    # What ser(value, req, res, errorHandler) does for plumber's JSON
    # serializers: the Content-Type header, the body, toResponse().
    # Its errors are the caller's to hand to the error handler, as the
    # serializer does (serialize_json_failed).
    serialize_json <- function(value, unbox, res) {
      res$headers <- c(res$headers, list(`Content-Type` = "application/json"))
      res$body <- json_body(value, unbox)
      h <- res$headers
      body <- res$body
      if (is.character(body)) Encoding(body) <- get_character_set(h$HTTP_CONTENT_TYPE)
      status <- res$status
      if (status %in% c(100:199, 204, 304)) body <- NULL
      list(status = status, headers = h, body = body)
    }
    # What the serializer answers when it fails, and what plumber's serve
    # step answers when that fails too.
    serialize_json_failed <- function(req, res, err) {
      tryCatch(P$errorHandler(req, res, err), error = function(error) {
        res$body <- P$errorHandler(req, res, error)
        res$toResponse()
      })
    }
    # The probe values toJSON() and json_body() must agree on.
    json_probes <- list(NULL, NA, list(), 1L, 2.5, c(1.123456789, NA, Inf), "x", c("a", NA), TRUE,
                        list(a = 1, b = "x", c = list(d = NULL, e = c(TRUE, FALSE))),
                        data.frame(x = 1:2, y = c("a", "b"), f = factor(c("u", "v"))),
                        matrix(1:4, 2), I("one"), list(species = I(factor("virginica"))),
                        as.Date("2026-01-02"), as.POSIXct("2026-01-02 03:04:05", tz = "UTC"),
                        as.raw(1:3), 1+2i, structure(list(), names = character(0)))
    json_fast_ok <- is.function(json_as) && is.list(json_args) && is.function(get_character_set) &&
      isTRUE(tryCatch(all(vapply(json_probes, function(v) {
        identical(json_body(v, TRUE), jsonlite::toJSON(v, auto_unbox = TRUE)) &&
          identical(json_body(v, FALSE), jsonlite::toJSON(v))
      }, logical(1))), error = function(e) FALSE))
    if (json_fast_ok) fast_paths <<- c(fast_paths, "json")
    # Serializers seen, with json_unbox_of_serializer()'s answer: a
    # serializer is one closure object, so identical() is a pointer check.
    json_seen <- list()
    json_unbox <- function(ser) {
      # Environments first: identical() compares two closures' bodies
      # before their environments, and plumber's serializers share one.
      for (s in json_seen) if (identical(environment(s[[1]]), environment(ser)) && identical(s[[1]], ser)) return(s[[2]])
      unbox <- if (json_fast_ok) json_unbox_of_serializer(ser) else NA
      if (length(json_seen) < 16L) json_seen[[length(json_seen) + 1L]] <<- list(ser, unbox)
      unbox
    }

    # One response object per worker, set back to what
    # PlumberResponse$new() makes before each request: a worker serves one
    # request at a time, and R6's construction is a measurable part of a
    # small request.
    response_fields <- c("status", "body", "headers", "serializer")
    reusable <- identical(sort(names(PlumberResponse$public_fields)), sort(response_fields)) &&
      length(PlumberResponse$private_fields) == 0 && length(PlumberResponse$active) == 0
    empty_headers <- PlumberResponse$public_fields$headers
    res_obj <- NULL
    new_response <- function() {
      if (!reusable || is.null(res_obj)) {
        r <- PlumberResponse$new(P$default_serializer)
        if (reusable) res_obj <<- r
        return(r)
      }
      # assign(): an R6 object's `$<-` first looks for S3 methods.
      assign("status", 200L, envir = res_obj)
      assign("body", NULL, envir = res_obj)
      assign("headers", empty_headers, envir = res_obj)
      assign("serializer", P$default_serializer, envir = res_obj)
      res_obj
    }

    function(req) {
      req$pr <- pr
      req$.internal <- new.env()
      res <- new_response()
      req$args <- list()
      exec <- new.env(parent = emptyenv())
      exec$req <- req
      exec$res <- res
      path <- req$PATH_INFO

      # One endpoint stage: the first endpoint that serves the request runs,
      # unless none does or it forwards. list(value) when it answered.
      handle <- function(stage) {
        exec$forward <- FALSE
        method <- req$REQUEST_METHOD
        for (e in ends[[stage]]) {
          served <- if (e$static) {
            path == e$path && any(e$verbs == method)
          } else {
            e$obj$canServe(req)
          }
          if (!served) next
          h <- e$obj
          if (!is.null(h$serializer)) res$serializer <- h$serializer
          parsers <- if (!is.null(h$parsers)) h$parsers else P$default_parsers
          req$argsPath <- if (e$static) e$path_params else h$getPathParams(path)
          if (timing) stamps$parse <- clock()
          if (!e$req_res_only || !lazy_body(e, req, parsers)) {
            req$body <- parse_request_body(e, req, parsers)
            req$argsBody <- req_body_args(req)
            req$args <- c(req$args, req$argsPath, req$argsBody)
          }
          if (timing) stamps$handler <- clock()
          value <- if (e$hooks) {
            h$exec(req, res)
          } else if (e$req_res_only) {
            # What getRelevantArgs() gives such a function.
            args <- list()
            if (e$wants_req) args$req <- req
            if (e$wants_res) args$res <- res
            do.call(e$func, args, envir = e$envir)
          } else {
            do.call(e$func, getRelevantArgs(c(list(req = req, res = res), req$args), func = e$func),
                    envir = e$envir)
          }
          if (timing) stamps$handled <- clock()
          if (isTRUE(exec$forward)) return(NULL)
          return(list(value))
        }
        exec$forward <- TRUE
        NULL
      }

      route <- function() {
        orig_exec <- globals[[exec_name]]
        globals[[exec_name]] <- exec
        # plumber routes with options(warn = 1) and restores the value
        # after; a worker keeps warn at 1 between requests (worker()), so
        # options() is called only when a handler changed it.
        old_warn <- getOption("warn")
        if (!isTRUE(old_warn == 1)) options(warn = 1)
        on.exit({
          globals[[exec_name]] <- orig_exec
          if (!isTRUE(getOption("warn") == old_warn)) options(warn = old_warn)
        })
        tryCatch({
          if (first_has_ends) {
            r <- handle("__first__")
            if (!is.null(r)) return(r[[1]])
          }
          for (fi in filts) {
            if (fi$has_ends) {
              r <- handle(fi$name)
              if (!is.null(r)) return(r[[1]])
            }
            exec$forward <- FALSE
            switch(fi$kind,
              queryString = {
                if (!isTRUE(req$.internal$queryStringHandled)) {
                  qs <- req$QUERY_STRING
                  # parseQS("") is list().
                  args <- if (identical(qs, "")) list() else parseQS(qs)
                  req$args <- c(req$args, args)
                  req$argsQuery <- args
                  req$.internal$queryStringHandled <- TRUE
                }
              },
              body = {
                if (!isTRUE(req$.internal$bodyHandled)) {
                  rook_input <- req$rook.input
                  req$bodyRaw <- rook_input$read()
                  delayedAssign("postBody", {
                    rook_input$rewind()
                    paste0(rook_input$read_lines(), collapse = "\n")
                  }, assign.env = req)
                  req$.internal$bodyHandled <- TRUE
                }
              },
              cookieParser = {
                cookie <- req$HTTP_COOKIE
                # parseCookies(NULL) is list().
                req$cookies <- if (is.null(cookie)) list() else parseCookies(cookie)
              },
              {
                if (fi$kind == "sharedSecret" && is.null(getOption("plumber.sharedSecret", NULL))) next
                value <- if (fi$hooks) {
                  fi$obj$exec(req, res)
                } else {
                  do.call(fi$func, getRelevantArgs(c(list(req = req, res = res), req$args), func = fi$func),
                          envir = fi$envir)
                }
                if (!isTRUE(exec$forward)) {
                  if (!is.null(fi$obj$serializer)) res$serializer <- fi$obj$serializer
                  return(value)
                }
              })
          }
          r <- handle("__no-preempt__")
          if (!is.null(r)) return(r[[1]])
          for (mount_path in names(mnts)) {
            exec$forward <- FALSE
            if (nchar(path) >= nchar(mount_path) && substr(path, 0, nchar(mount_path)) == mount_path) {
              req$PATH_INFO <- substr(req$PATH_INFO, nchar(mount_path), nchar(req$PATH_INFO))
              value <- mnts[[mount_path]]$route(req, res)
              if (!isTRUE(exec$forward)) return(value)
            } else {
              exec$forward <- TRUE
            }
          }
          exec$forward <- FALSE
          if (isTRUE(getOption("plumber.trailingSlash", FALSE))) {
            p <- req$PATH_INFO
            if (!grepl("/$", p)) {
              new_path <- paste0(p, "/")
              if (router_has_route(req$pr, new_path, req$REQUEST_METHOD)) {
                res$status <- 307
                res$setHeader(name = "Location", value = paste0(new_path, req$QUERY_STRING))
                res$serializer <- serializer_unboxed_json()
                return(list(message = "307 - Redirecting with trailing slash"))
              }
            }
          }
          if (isTRUE(getOption("plumber.methodNotAllowed", TRUE))) {
            if (is_405(req$pr, req$PATH_INFO, req$REQUEST_METHOD)) {
              res$status <- 405L
              res$setHeader("Allow", paste(req$verbsAllowed, collapse = ", "))
              res$serializer <- serializer_unboxed_json()
              return(list(error = "405 - Method Not Allowed"))
            }
          }
          P$notFoundHandler(req = req, res = res)
        }, error = function(error) P$errorHandler(req, res, error))
      }

      in_json <- FALSE # serialize_json() runs: its errors are the serializer's
      tryCatch({
        value <- route()
        if ("PlumberResponse" %in% class(value)) return(res$toResponse())
        ser <- res$serializer
        if (typeof(ser) != "closure") stop("Serializers must be closures: '", ser, "'")
        unbox <- json_unbox(ser)
        if (is.na(unbox) || inherits(value, "plumber_attachment")) {
          ser(value, req, res, P$errorHandler)
        } else {
          in_json <- TRUE
          serialize_json(value, unbox, res)
        }
      }, error = function(error) {
        if (in_json) return(serialize_json_failed(req, res, error))
        res$body <- P$errorHandler(req, res, error)
        res$toResponse()
      })
    }
  }

  # parallel's mcfork() turns R's just-in-time compiler off in a forked
  # child (its children are usually short-lived), so a worker runs every
  # function that was not compiled before the fork in R's AST interpreter,
  # for its whole life: plumber.R's handlers first of all (a handler with
  # an R loop, 12 times slower). Turning the compiler back on in workers
  # would make each compile this file's code on its first requests, or the
  # session compile it before forking (about a second on every start).
  # Instead, the session compiles plumber.R's own functions, once, before
  # forking, and the workers share them: the endpoints' and filters'
  # functions, the functions plumber.R defines at its top level (the
  # seed's scoring_function, a crate) and plumbline's request log. A
  # compiled function is the same function: only how R runs it changes.
  # Skipped when the session's compiler is off (R_ENABLE_JIT=0).
  jit_level <- tryCatch(compiler::enableJIT(-1), error = function(e) 0L)
  if (jit_level > 0) local({
    precompile <- function(f) {
      if (typeof(f) != "closure") return(f)
      out <- tryCatch(compiler::cmpfun(f), error = function(e) NULL)
      if (typeof(out) == "closure") out else f
    }
    envs <- list()
    for (o in c(unlist(P$ends, use.names = FALSE), P$filts)) {
      po <- private_of(o)
      if (is.null(po) || typeof(po$func) != "closure" || bindingIsLocked("func", po)) next
      envs[[length(envs) + 1L]] <- environment(po$func)
      po$func <- precompile(po$func)
    }
    # plumbline's request log and error handler (internal/plumber/handlers.R).
    for (name in ls(globalenv(), pattern = "^plumbline_")) {
      f <- get(name, envir = globalenv())
      if (typeof(f) == "closure" && !bindingIsLocked(name, globalenv())) assign(name, precompile(f), envir = globalenv())
    }
    for (env in unique(envs)) {
      if (identical(env, globalenv()) || isNamespace(env) || environmentIsLocked(env)) next
      for (name in ls(env, all.names = TRUE)) {
        if (bindingIsActive(name, env) || bindingIsLocked(name, env)) next
        f <- get(name, envir = env, inherits = FALSE)
        if (typeof(f) == "closure") assign(name, precompile(f), envir = env)
      }
    }
  })

  serve_hooks <- c("preroute", "postroute", "preserialize", "postserialize")
  compiled <- router_mode != "call" && length(unlist(P$hooks[serve_hooks], recursive = FALSE)) == 0 &&
    all(c(".globals", "currentExecName", "getRelevantArgs", "req_body_parser", "req_body_args",
          "parseQS", "parseCookies", "is_405", "router_has_route", "defaultPlumberFilters") %in% names(ns))
  call_router <- if (compiled) compile_router(pr) else function(req) pr$call(req)
  if (exists("plumbline_with_request_log")) {
    route_request <- call_router
    call_router <- function(req) plumbline_with_request_log(req, route_request(req))
  }

  # ---- requests and responses -----------------------------------------------
  httpuv_version <- tryCatch(utils::packageVersion("httpuv"), error = function(e) NULL)

  # rook.input as httpuv gives it: read(), rewind(), read_lines().
  input_stream <- function(body) {
    pos <- 0L
    list(
      read = function(l = -1L) {
        n <- length(body) - pos
        if (l >= 0L && l < n) n <- l
        out <- if (n <= 0L) raw(0) else if (pos == 0L && n == length(body)) body else body[seq.int(pos + 1L, length.out = n)]
        pos <<- pos + max(n, 0L)
        out
      },
      rewind = function() {
        pos <<- 0L
        invisible(NULL)
      },
      read_lines = function(n = -1L) {
        rest <- if (pos == 0L) body else body[seq.int(pos + 1L, length.out = length(body) - pos)]
        pos <<- length(body)
        if (!length(rest)) return(character(0))
        con <- rawConnection(rest)
        on.exit(close(con))
        readLines(con, n = n, warn = FALSE)
      }
    )
  }
  error_stream <- list(
    cat = function(..., sep = " ") cat(..., sep = sep, file = stderr()),
    flush = function() invisible(NULL)
  )

  to_http_name <- function(names) paste0("HTTP_", chartr("abcdefghijklmnopqrstuvwxyz-", "ABCDEFGHIJKLMNOPQRSTUVWXYZ_", names))
  # Header names seen, with their HTTP_ names: clients send the same few
  # names on every request, and chartr() over the alphabet is most of
  # what building req costs. Bounded, so a client sending new names
  # cannot grow it.
  http_names <- character(0)
  http_names_of <- function(names) {
    out <- http_names[names]
    miss <- is.na(out)
    if (any(miss)) {
      fresh <- to_http_name(names[miss])
      out[miss] <- fresh
      if (length(http_names) < 256L) {
        keep <- !duplicated(names[miss])
        http_names <<- c(http_names, structure(fresh[keep], names = names[miss][keep]))
      }
    }
    out
  }

  make_req <- function(head, body) {
    req <- new.env()
    req$REQUEST_METHOD <- head[[1]]
    req$SCRIPT_NAME <- ""
    req$PATH_INFO <- head[[2]]
    req$QUERY_STRING <- if (nzchar(head[[3]])) paste0("?", head[[3]]) else ""
    req$REMOTE_ADDR <- head[[4]]
    req$REMOTE_PORT <- head[[5]]
    req$SERVER_NAME <- head[[6]]
    req$SERVER_PORT <- head[[7]]
    req$rook.version <- "1.1-0"
    req$rook.url_scheme <- "http"
    req$rook.input <- input_stream(body)
    req$rook.errors <- error_stream
    if (!is.null(httpuv_version)) req$httpuv.version <- httpuv_version
    n <- length(head) - 1L # the last line is the "." end mark
    if (n >= 9L) {
      idx <- seq.int(8L, n - 1L, by = 2L)
      names <- head[idx]
      values <- head[idx + 1L]
      vars <- as.list(values)
      names(vars) <- http_names_of(names)
      list2env(vars, envir = req)
      if (!is.na(i <- match("content-type", names))) req$CONTENT_TYPE <- values[[i]]
      if (!is.na(i <- match("content-length", names))) req$CONTENT_LENGTH <- values[[i]]
      names(values) <- names
      req$HEADERS <- values
    } else {
      req$HEADERS <- structure(character(0), names = character(0))
    }
    req
  }

  u32 <- function(x) writeBin(as.integer(x), raw(), size = 4L, endian = "little")

  # The parts of a response frame: status, head and body (raw).
  encode_response <- function(resp) {
    status <- resp$status
    # A plain number needs no warning handler (suppressWarnings() is most of
    # what this costs otherwise).
    status <- if (is.numeric(status) && length(status) == 1L && !is.na(status) && abs(status) < 2147483647) {
      as.integer(status)
    } else {
      suppressWarnings(as.integer(status))
    }
    if (length(status) != 1L || is.na(status)) status <- 500L
    h <- resp$headers
    head <- raw(0)
    if (length(h)) {
      # Most often every header is one string.
      values <- unlist(h, use.names = FALSE)
      if (is.character(values) && length(values) == length(h)) {
        names <- names(h)
      } else {
        values <- lapply(h, function(v) as.character(v))
        names <- rep(names(h), lengths(values))
        values <- unlist(values, use.names = FALSE)
      }
      # Line breaks would end a head line: each becomes a space (chartr,
      # a character translation, costs less than a regular expression).
      values <- chartr("\r\n", "  ", values)
      names <- chartr("\r\n", "  ", names)
      head <- charToRaw(paste0(names, "\n", values, "\n", collapse = ""))
    }
    body <- resp$body
    if (is.null(body)) {
      body <- raw(0)
    } else if (is.character(body)) {
      body <- charToRaw(paste0(body, collapse = ""))
    } else if (is.list(body) && !is.null(body$file)) {
      body <- readBin(body$file, "raw", n = file.size(body$file))
    } else if (!is.raw(body)) {
      body <- charToRaw(paste0(as.character(body), collapse = ""))
    }
    list(status = status, head = head, body = body)
  }
  frame_of <- function(parts) {
    c(u32(c(parts$status, length(parts$head), length(parts$body))), parts$head, parts$body)
  }

  read_full <- function(con, n) {
    if (n <= 0L) return(raw(0))
    got <- readBin(con, "raw", n)
    if (length(got) == n) return(got)
    parts <- list(got)
    have <- length(got)
    while (have < n) {
      more <- readBin(con, "raw", n - have)
      if (!length(more)) return(NULL)
      parts[[length(parts) + 1L]] <- more
      have <- have + length(more)
    }
    do.call(c, parts)
  }

  # A promise (an async endpoint the static check missed) is waited for here.
  settle <- function(value) {
    if (!inherits(value, "promise")) return(value)
    done <- FALSE
    out <- NULL
    promises::then(value,
      onFulfilled = function(v) { out <<- v; done <<- TRUE },
      onRejected = function(e) {
        out <<- list(status = 500L, headers = list(`Content-Type` = "application/json"),
                     body = "{\"error\":\"500 - Internal server error\"}")
        message("plumbline: asynchronous handler failed: ", conditionMessage(e))
        done <<- TRUE
      })
    while (!done) later::run_now(1)
    out
  }

  worker <- function(id) {
    status <- 0L
    # quit() in a forked process would run R's exit sequence, which removes
    # the temporary folder it shares with the loaded session and the other
    # workers: here it ends the worker only (which is forked again).
    leave <- function(save = "default", status = 0, runLast = TRUE) {
      message("plumbline: quit() called while serving a request: this worker ends and is replaced")
      parallel:::mcexit(as.integer(status))
    }
    assign("quit", leave, envir = globalenv())
    assign("q", leave, envir = globalenv())
    tryCatch({
      out <- fifo(file.path(dir, paste0(id, ".out")), "wb", blocking = TRUE)
      inp <- fifo(file.path(dir, paste0(id, ".in")), "rb", blocking = TRUE)
      writeBin(u32(c(0L, Sys.getpid(), 0L)), out)
      flush(out)
      # What the compiled router's route() sets for each request (as
      # plumber's does), kept between requests so that it need not be set
      # and restored every time.
      if (compiled) options(warn = 1)
      if (nzchar(rprof_file)) Rprof(paste0(rprof_file, ".", id), interval = 0.0005, gc.profiling = TRUE)
      repeat {
        lens <- read_full(inp, 8L)
        if (is.null(lens)) break
        if (timing) t_arrived <- clock()
        lens <- readBin(lens, "integer", 2L, size = 4L, endian = "little")
        head <- read_full(inp, lens[[1]])
        body <- read_full(inp, lens[[2]])
        if (is.null(head) || is.null(body)) break
        head <- strsplit(rawToChar(head), "\n", fixed = TRUE)[[1]]
        if (length(head) < 8L) stop("malformed request frame")
        # Made again if something removed it (base::quit() in a worker).
        tempdir(check = TRUE)
        if (timing) {
          t_read <- clock()
          stamps$parse <- stamps$handler <- stamps$handled <- NA_real_
        }
        req <- make_req(head, body)
        if (timing) t_req <- clock()
        resp <- settle(call_router(req))
        if (timing) t_routed <- clock()
        parts <- encode_response(resp)
        if (timing) {
          # Read by the supervisor, which answers it as Server-Timing.
          # The stamps before the last are formatted first, so that the
          # last one (the answer encoded) leaves out most of this work.
          t <- c(t_arrived, t_read, t_req, stamps$parse, stamps$handler, stamps$handled, t_routed)
          earlier <- sprintf("%.6f", t)
          earlier[is.na(t)] <- "-"
          earlier <- paste(earlier, collapse = " ")
          parts$head <- c(parts$head, charToRaw(paste0(".plumbline-timing\n", earlier, " ", sprintf("%.6f", clock()), "\n")))
        }
        writeBin(frame_of(parts), out)
        flush(out)
      }
      if (nzchar(rprof_file)) Rprof(NULL)
    }, error = function(e) {
      message("plumbline: worker ", id, " stopped: ", conditionMessage(e))
      status <<- 1L
    })
    # mcexit ends the forked process at once, without R's exit sequence,
    # which would remove the session's temporary folder shared with the
    # loaded session and the other workers.
    parallel:::mcexit(status)
  }

  # ---- the loaded session ---------------------------------------------------
  # Objects allocated so far (the model included) move to the oldest
  # generation, so that the workers' collections rarely touch their pages.
  invisible(gc(full = TRUE))
  invisible(gc(full = TRUE))
  rss <- tryCatch({
    st <- readLines("/proc/self/statm", warn = FALSE)
    as.numeric(strsplit(st, " ")[[1]][2]) * 4096
  }, error = function(e) 0)
  message("plumbline: plumber API loaded from ", entry_script_path, " (lean R runtime, ",
          if (compiled) "compiled router" else "pr$call router", ")")
  tell("loaded", format(rss, scientific = FALSE), format(as.numeric(P$maxSize), scientific = FALSE),
       if (compiled) "compiled" else "call", if (length(fast_paths)) paste(fast_paths, collapse = ",") else "-")

  commands <- file("stdin", "r")
  repeat {
    line <- readLines(commands, n = 1L)
    if (!length(line)) break
    words <- strsplit(line, " ", fixed = TRUE)[[1]]
    if (length(words) != 2L || words[[1]] != "fork") next
    id <- words[[2]]
    child <- tryCatch(parallel:::mcfork(estranged = TRUE), error = function(e) {
      message("plumbline: cannot fork a worker: ", conditionMessage(e))
      NULL
    })
    if (is.null(child)) {
      tell("forkfailed", id)
      next
    }
    if (inherits(child, "masterProcess")) {
      close(commands)
      close(ctl)
      # A worker's random numbers are its own, as in separate R processes
      # (what parallel::mcparallel does with mc.set.seed = TRUE): a fresh
      # seed, or the next L'Ecuyer stream, which the session advanced.
      if (RNGkind()[[1]] != "L'Ecuyer-CMRG" && exists(".Random.seed", envir = globalenv(), inherits = FALSE)) {
        rm(".Random.seed", envir = globalenv())
      }
      worker(id)
    }
    if (RNGkind()[[1]] == "L'Ecuyer-CMRG" && exists(".Random.seed", envir = globalenv(), inherits = FALSE)) {
      assign(".Random.seed", parallel::nextRNGStream(get(".Random.seed", envir = globalenv())), envir = globalenv())
    }
    tell("forked", id, child$pid)
  }
  quit(save = "no", status = 0)
})
