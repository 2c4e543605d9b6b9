# plumber.R
# This script is deployed to an online endpoint to do the model scoring.
# plumbline runs it unchanged, as Azure ML does, with its built-in launcher
# (the equivalent of ../docker-context/start_plumber.R).

# REQUIRED: the model folder registered with `plumbline model create` (or
# given inline in deployment.yml) is mounted read-only under
# AZUREML_MODEL_DIR, keeping its folder name: models/crate.bin.
model_dir <- Sys.getenv("AZUREML_MODEL_DIR")

# REQUIRED: a crate is a scoring closure saved with
# saveRDS(serialize(fn, NULL), "crate.bin"); unserialize it back.
load_model <- readRDS(paste0(model_dir, "/models/crate.bin"))
scoring_function <- unserialize(load_model)

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

# The request is a JSON object with one array per column; the response is a
# plain R list, which plumber encodes as JSON (returning jsonlite::toJSON()
# would encode it twice).

#* Score rows
#* @serializer unboxedJSON
#* @post /score
function(req, res) {
  body <- tryCatch(jsonlite::fromJSON(rawToChar(req$bodyRaw)), error = function(e) NULL)
  if (!is.list(body) || length(body) == 0) {
    res$status <- 400
    return(list(error = "send a JSON object with one array per column"))
  }
  newdata <- as.data.frame(lapply(body, unlist))
  list(prediction = I(scoring_function(newdata)))
}
