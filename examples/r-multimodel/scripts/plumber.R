# plumber.R
# Azure's r/multimodel-plumber scoring script, plus input checks: one endpoint
# serves three models, and each request names the one to use.

model_dir <- Sys.getenv("AZUREML_MODEL_DIR")

model_names <- tolower(LETTERS[1:3])
load_model <- function(model_name){readRDS(paste0(model_dir,"/models/",model_name,".rds"))}
models <- lapply(model_names, load_model)
names(models) <- model_names

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

# Request:  {"model": "a", "x1": [0.77, -0.11, -0.75], "x2": [-0.25, -0.96, -1.0]}
# Response: one prediction per row, a bare JSON array, as in Azure's example
#           (these are train.R's model a):
#           [2.29999576921382,1.24487741948308,-0.000568177440601003]
# A bad request gets a 400 and {"error": "..."} naming the problem, for
# instance the allowed model names.
#
# Two differences from Azure's script, both visible only in the body:
# - digits = NA: plumber's default JSON serializer rounds numbers to 4 decimal
#   places (jsonlite's default), which turns a prediction of 0.0005466 into
#   0.0005; this keeps 15 significant digits.
# - errors are returned as a plain R list with an unboxed string, so the
#   serializer writes {"error": "..."} rather than {"error": ["..."]}. Do not
#   return jsonlite::toJSON(...) from an endpoint: plumber would encode the
#   JSON string a second time.
#
# Send the request with Content-Type: application/json (Azure's and
# plumbline's invoke do): plumber binds the body's fields to the function's
# arguments only when it parses the body as JSON.

#* Score with one of the models a, b or c
#* @param model
#* @param x1
#* @param x2
#* @serializer json list(digits = NA)
#* @post /score
function(model, x1, x2, res) {
  bad_request <- function(message) {
    res$status <- 400
    list(error = jsonlite::unbox(message))
  }
  missing_fields <- c("model", "x1", "x2")[c(missing(model), missing(x1), missing(x2))]
  if (length(missing_fields) > 0) {
    return(bad_request(paste0("missing field(s): ", paste(missing_fields, collapse = ", "))))
  }
  allowed <- paste(names(models), collapse = ", ")
  if (!is.character(model) || length(model) != 1 || !(model %in% names(models))) {
    return(bad_request(paste0("unknown model ", jsonlite::toJSON(model, auto_unbox = TRUE),
                              ": model must be one of ", allowed)))
  }
  x1 <- unlist(x1)
  x2 <- unlist(x2)
  if (!is.numeric(x1) || !is.numeric(x2) || length(x1) == 0 || length(x2) == 0) {
    return(bad_request("x1 and x2 must be non-empty arrays of numbers"))
  }
  if (length(x1) != length(x2)) {
    return(bad_request(sprintf("x1 and x2 must have the same length, got %d and %d",
                               length(x1), length(x2))))
  }
  if (anyNA(x1) || anyNA(x2)) {
    return(bad_request("x1 and x2 must not contain null"))
  }
  newdata <- data.frame(
    x1=x1, 
    x2=x2
    )
  as.numeric(predict(models[[model]], newdata, type="response"))
}
