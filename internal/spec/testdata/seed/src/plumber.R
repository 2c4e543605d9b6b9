# The seed's scoring script shape (reference/seed-deploy-r-model.md), trimmed:
# spec tests only need the file to exist.
model_dir <- Sys.getenv("AZUREML_MODEL_DIR")

#* @get /live
function() "alive"

#* @get /ready
function() "ready"

#* @post /score
function(forecast_horizon) as.numeric(forecast_horizon)
