# plumber.R
# This script will be deployed to a managed endpoint to do the model scoring

# REQUIRED
# When you deploy a model as an online endpoint, AzureML mounts your model
# to your endpoint. Model mounting enables you to deploy new versions of the model without
# having to create a new Docker image.

model_dir <- Sys.getenv("AZUREML_MODEL_DIR")

# REQUIRED
# This reads the serialized model with its respecive predict/score method you 
# registered. The loaded load_model object is a raw binary object.
load_model <- readRDS(paste0(model_dir, "/models/crate.bin"))

# REQUIRED
# You have to unserialize the load_model object to make it its function
scoring_function <- unserialize(load_model)

# REQUIRED
# << Readiness route vs. liveness route >>
# An HTTP server defines paths for both liveness and readiness. A liveness route is used to
# check whether the server is running. A readiness route is used to check whether the 
# server's ready to do work. In machine learning inference, a server could respond 200 OK 
# to a liveness request before loading a model. The server could respond 200 OK to a
# readiness request only after the model has been loaded into memory.

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

# << The scoring function >>
# This is the function that is deployed as a web API that will score the model
# Make sure that whatever you are producing as a score can be converted 
# to JSON to be sent back as the API response
#
# The request has one array per feature, one element per row:
#   {"sepal_length": [6.7], "sepal_width": [3.3], "petal_length": [5.7], "petal_width": [2.5]}
# The response has one array, one predicted species per row:
#   {"species": ["virginica"]}
# A request with a missing, empty, non-numeric or ragged field gets a 400 and
#   {"error": "missing field(s): petal_width"}
#
# Why not jsonlite::toJSON() as in the seed: with plumber >= 1.0 the endpoint's
# return value is always passed through the serializer, so a JSON string
# returned from here is encoded a second time and the client receives
# ["{\"species\":[\"virginica\"]}"] (a string inside an array). Returning a
# plain R list lets the serializer do the encoding once. unboxedJSON writes
# length-1 values as scalars (nicer for the error message); I() keeps
# species an array even for a single row, so the response shape never depends
# on the number of rows.

fields <- c("sepal_length", "sepal_width", "petal_length", "petal_width")

# The body is described in the API docs' text rather than with @param:
# plumber 1.2.1 documents every @param as a query parameter, which would be
# wrong here.

#* Predict the iris species
#* Body: {"sepal_length": [6.7], "sepal_width": [3.3], "petal_length": [5.7], "petal_width": [2.5]}, one array element per row (cm). Returns {"species": ["virginica"]}.
#* @serializer unboxedJSON
#* @post /score
function(req, res) {
  bad_request <- function(message) {
    res$status <- 400
    list(error = message)
  }
  # Read the JSON from the raw body rather than from req$body, so that a
  # request sent without "Content-Type: application/json" (plumber would
  # parse it as a form) is read the same way. A body that is not JSON at all
  # but is labelled application/json never gets here: plumber's own parser
  # rejects it first with a 500 {"error":"500 - Internal server error"}.
  body <- tryCatch(jsonlite::fromJSON(rawToChar(req$bodyRaw)), error = function(e) e)
  if (inherits(body, "error")) {
    return(bad_request(paste0("request body is not valid JSON: ",
                              trimws(sub("\n.*", "", conditionMessage(body))))))
  }
  if (!is.list(body)) {
    return(bad_request("request body must be a JSON object"))
  }
  missing_fields <- fields[!fields %in% names(body) |
                             vapply(fields, function(f) length(body[[f]]) == 0, logical(1))]
  if (length(missing_fields) > 0) {
    return(bad_request(paste0("missing field(s): ", paste(missing_fields, collapse = ", "))))
  }
  not_numeric <- fields[!vapply(fields, function(f) is.numeric(unlist(body[[f]])), logical(1))]
  if (length(not_numeric) > 0) {
    return(bad_request(paste0("field(s) must be arrays of numbers: ",
                              paste(not_numeric, collapse = ", "))))
  }
  lengths <- vapply(body[fields], function(v) length(unlist(v)), integer(1))
  if (length(unique(lengths)) != 1) {
    return(bad_request(paste0("fields must have the same length, got ",
                              paste0(fields, "=", lengths, collapse = ", "))))
  }
  newdata <- as.data.frame(lapply(body[fields], unlist))
  if (anyNA(newdata)) {
    return(bad_request("fields must not contain null"))
  }
  list(species = I(scoring_function(newdata)))
}
