# The benchmarks' slower model (see ../train.R): the seed's shape, with a
# 500-tree ranger forest instead of the iris crate.

model <- readRDS(paste0(Sys.getenv("AZUREML_MODEL_DIR"), "/models/model.rds"))
suppressPackageStartupMessages(library(ranger))

#* @get /live
function() "alive"

#* @get /ready
function() "ready"

#* Predict the iris species with 500 trees.
#* @serializer unboxedJSON
#* @post /score
function(req, res) {
  body <- jsonlite::fromJSON(rawToChar(req$bodyRaw))
  newdata <- data.frame(Sepal.Length = body$sepal_length, Sepal.Width = body$sepal_width,
                        Petal.Length = body$petal_length, Petal.Width = body$petal_width)
  # One thread: instances and workers are the unit of parallelism here.
  pred <- predict(model, newdata, num.threads = 1)
  list(species = I(as.character(pred$predictions)))
}
