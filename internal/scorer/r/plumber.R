# plumbline's built-in scorer: serves a model that has no scoring script.
#
# plumbline runs this file like any plumber.R (so it works on whichever R
# runtime the deployment uses) with:
#   AZUREML_MODEL_DIR          the model's files
#   PLUMBLINE_SCORER_FORMAT    crate (a crate.bin, alone or in an MLflow model),
#                              vetiver (a pins board version of a vetiver_model),
#                              rds (any fitted model with a predict() method)
#   PLUMBLINE_MODEL_FILE       the model file, relative to AZUREML_MODEL_DIR
#   PLUMBLINE_MODEL_META       JSON: the pin's metadata (user, version, url,
#                              description, required_pkgs) or the model's
# Routes: POST /score, /predict (vetiver), /invocations (MLflow's scoring
# server, answering {"predictions": ...}); GET /ping, /metadata, /prototype.
#
# With PLUMBLINE_SCORER_PRINT=packages or =prototype it prints what the model
# needs (one package per line) or its prototype (JSON) and quits: plumbline's
# pre-start check and resolver read them.

`%||%` <- function(a, b) if (is.null(a)) b else a

model_dir <- Sys.getenv("AZUREML_MODEL_DIR")
scorer_format <- Sys.getenv("PLUMBLINE_SCORER_FORMAT")
model_file <- file.path(model_dir, Sys.getenv("PLUMBLINE_MODEL_FILE"))
print_mode <- Sys.getenv("PLUMBLINE_SCORER_PRINT")
meta_json <- Sys.getenv("PLUMBLINE_MODEL_META")
meta <- if (nzchar(meta_json)) jsonlite::fromJSON(meta_json, simplifyVector = FALSE) else list()

obj <- readRDS(model_file)
prototype <- NULL
required_pkgs <- unlist(meta$required_pkgs)

if (scorer_format == "crate") {
  # MLflow's crate flavour: saveRDS(serialize(fn, NULL), "crate.bin").
  if (is.raw(obj)) obj <- unserialize(obj)
  if (!is.function(obj)) stop(model_file, " does not hold a crate (a function); it holds a ", class(obj)[[1]])
  model <- obj
} else {
  model <- obj
  if (is.list(obj) && !is.data.frame(obj) && !is.null(obj$model) &&
      (!is.null(obj$prototype) || !is.null(obj$ptype) || "prototype" %in% names(obj))) {
    # vetiver_pin_write(): list(model = <bundled model>, prototype = <0-row
    # data frame>) (older vetiver: ptype and required_pkgs in the list).
    model <- obj$model
    prototype <- obj$prototype %||% obj$ptype
    required_pkgs <- unique(c(required_pkgs, unlist(obj$required_pkgs)))
  }
  # bundle::bundle() output: unbundle it without the bundle package.
  if (inherits(model, "bundle") && is.function(model$situation)) model <- model$situation(model$object)
}

# Packages the model needs: the pin's required_pkgs, an S4 class's package,
# and the package of well-known model classes.
class_packages <- c(
  randomForest = "randomForest", ranger = "ranger", xgb.Booster = "xgboost", glmnet = "glmnet",
  train = "caret", workflow = "workflows", model_fit = "parsnip", gbm = "gbm", svm = "e1071",
  rpart = "rpart", earth = "earth", naiveBayes = "e1071", gam = "mgcv", nnet = "nnet",
  multinom = "nnet", lda = "MASS", qda = "MASS", rlm = "MASS", polr = "MASS", C5.0 = "C50",
  lgb.Booster = "lightgbm", kproto = "clustMixType", Learner = "mlr3", cubist = "Cubist")
model_packages <- function(m) {
  cls <- class(m)
  pkgs <- unname(class_packages[intersect(cls, names(class_packages))])
  s4 <- attr(cls, "package")
  if (!is.null(s4)) pkgs <- c(pkgs, s4)
  base <- rownames(installed.packages(priority = "base"))
  setdiff(unique(c(required_pkgs, pkgs)), c(base, "vetiver", "pins", "bundle"))
}
needed_pkgs <- if (scorer_format == "crate") character() else model_packages(model)

encode_prototype <- function(p) {
  lapply(p, function(x) {
    type <- if (is.factor(x)) "factor" else if (inherits(x, "POSIXct")) "POSIXct" else
      if (inherits(x, "Date")) "Date" else if (is.integer(x)) "integer" else
      if (is.numeric(x)) "numeric" else if (is.logical(x)) "logical" else "character"
    details <- if (is.factor(x)) list(levels = I(levels(x))) else structure(list(), names = character())
    list(type = type, example = if (length(x) > 0) x[[1]] else NULL, details = details)
  })
}

if (print_mode == "packages") {
  cat(needed_pkgs, sep = "\n")
  quit(save = "no")
}
if (print_mode == "prototype") {
  if (is.data.frame(prototype)) cat(jsonlite::toJSON(encode_prototype(prototype), auto_unbox = TRUE, null = "null"))
  quit(save = "no")
}

# Loading a namespace registers its predict() methods.
for (p in needed_pkgs) suppressPackageStartupMessages(requireNamespace(p, quietly = TRUE))

# --- request bodies -> data frame --------------------------------------------
# The same shapes plumbline's gateway checks: MLflow's dataframe_split and
# dataframe_records, instances / inputs / input_data, a list of records, an
# object of columns. null is NA.
column <- function(vals) {
  vals <- lapply(vals, function(v) if (is.null(v)) NA else v)
  unlist(vals)
}
from_records <- function(rows) {
  if (length(rows) > 0 && all(vapply(rows, function(r) is.null(names(r)), logical(1)))) {
    m <- do.call(rbind, lapply(rows, column))  # unnamed rows: a matrix
    return(as.data.frame(m))
  }
  cols <- unique(unlist(lapply(rows, names)))
  df <- lapply(cols, function(cn) column(lapply(rows, function(r) r[[cn]])))
  names(df) <- cols
  as.data.frame(df, stringsAsFactors = FALSE, check.names = FALSE)
}
from_split <- function(s) {
  cols <- unlist(s$columns)
  df <- lapply(seq_along(cols), function(j) column(lapply(s$data, function(r) r[[j]])))
  names(df) <- cols
  as.data.frame(df, stringsAsFactors = FALSE, check.names = FALSE)
}
from_columns <- function(o) {
  df <- lapply(o, function(v) if (is.list(v)) column(v) else if (is.null(v)) NA else v)
  as.data.frame(df, stringsAsFactors = FALSE, check.names = FALSE)
}
to_frame <- function(b) {
  if (is.null(names(b))) return(from_records(b))
  if (!is.null(b$dataframe_split)) return(from_split(b$dataframe_split))
  if (!is.null(b$dataframe_records)) return(from_records(b$dataframe_records))
  for (k in c("input_data", "inputs", "instances")) {
    x <- b[[k]]
    if (is.null(x)) next
    if (is.null(names(x))) return(from_records(x))
    if (!is.null(x$columns) && !is.null(x$data)) return(from_split(x))
    return(from_columns(x))
  }
  from_columns(b)
}

# vetiver's check: the prototype's columns, in its order and types.
conform <- function(df) {
  if (!is.data.frame(prototype)) return(df)
  missing <- setdiff(names(prototype), names(df))
  if (length(missing) > 0) stop(structure(class = c("bad_input", "error", "condition"),
    list(message = paste0("missing column(s): ", paste(missing, collapse = ", ")), call = NULL)))
  df <- df[names(prototype)]
  for (cn in names(prototype)) {
    p <- prototype[[cn]]
    x <- df[[cn]]
    df[[cn]] <- if (is.factor(p)) factor(x, levels = levels(p)) else
      if (inherits(p, "POSIXct")) as.POSIXct(x, tz = "UTC") else
      if (inherits(p, "Date")) as.Date(x) else
      if (is.integer(p)) as.integer(x) else
      if (is.numeric(p)) as.numeric(x) else
      if (is.logical(p)) as.logical(x) else as.character(x)
  }
  df
}

predict_frame <- function(df) {
  if (scorer_format == "crate") return(model(df))
  out <- stats::predict(model, newdata = conform(df))
  if (is.data.frame(out)) return(out)
  if (is.factor(out)) out <- as.character(out)
  if (is.matrix(out)) return(as.data.frame(out))
  list(.pred = unname(out))
}

score <- function(req, res, wrap = FALSE) {
  body <- tryCatch(jsonlite::fromJSON(rawToChar(req$bodyRaw), simplifyVector = FALSE), error = function(e) e)
  if (inherits(body, "error")) {
    res$status <- 400
    return(list(error = paste0("request body is not valid JSON: ", trimws(sub("\n.*", "", conditionMessage(body))))))
  }
  out <- tryCatch(predict_frame(to_frame(body)), bad_input = function(e) e, error = function(e) e)
  if (inherits(out, "bad_input")) {
    res$status <- 422
    return(list(error = conditionMessage(out)))
  }
  if (inherits(out, "error")) {
    res$status <- 500
    return(list(error = paste0("the model failed: ", conditionMessage(out))))
  }
  if (wrap) list(predictions = out) else out
}

#* Health (vetiver's /ping)
#* @get /ping
function() list(status = "online", time = Sys.time())

#* The model's metadata (vetiver's /metadata)
#* @get /metadata
function() list(user = meta$user %||% list(), version = meta$version, url = meta$url, required_pkgs = needed_pkgs)

#* The input prototype (vetiver's /prototype)
#* @serializer unboxedJSON list(null = "null")
#* @get /prototype
function(res) {
  if (!is.data.frame(prototype)) {
    res$status <- 404
    return(list(error = "this model has no input prototype"))
  }
  encode_prototype(prototype)
}

#* Score rows: records, an object of columns, or MLflow's dataframe_split / dataframe_records
#* @serializer json list(digits = NA, na = "null")
#* @post /score
function(req, res) score(req, res)

#* Score rows (vetiver's route)
#* @serializer json list(digits = NA, na = "null")
#* @post /predict
function(req, res) score(req, res)

#* Score rows (MLflow's scoring server route): {"predictions": ...}
#* @serializer json list(digits = NA, na = "null")
#* @post /invocations
function(req, res) score(req, res, wrap = TRUE)
