# Builds the no-code test models into the folder given as the first argument.
# Only base R and randomForest (Debian: r-cran-randomforest): the mlflow,
# carrier, vetiver and pins packages are not packaged for Debian, so this
# script writes their on-disk formats with base functions, exactly as those
# packages write them:
#   mlflow-crate/   MLmodel + crate.bin: mlflow's crate flavour
#                   (saveRDS(serialize(fn, NULL), "crate.bin"); MLmodel is
#                   yaml::write_yaml of {artifact_path, flavors: {crate:
#                   {version: 0.1.0, model: crate.bin}}, run_id,
#                   utc_time_created})
#   mlflow-python/  MLmodel with only the python_function flavour
#   lm.rds          saveRDS(lm(mpg ~ cyl + disp, mtcars))
#   rf.rds          saveRDS(randomForest(Species ~ ., iris))
#   board/iris-rf/<version>/iris-rf.rds + data.txt: vetiver_pin_write() to
#                   a pins board_folder: the .rds holds list(model, prototype
#                   = a 0-row slice of the training predictors), data.txt is
#                   pins' metadata (api_version 1) with user.required_pkgs.
#                   pins hashes files with xxhash64 (digest package, not in
#                   Debian's R here); plumbline does not read pin_hash, so an
#                   md5 prefix stands in for it.
suppressPackageStartupMessages(library(randomForest))
out <- commandArgs(trailingOnly = TRUE)[[1]]
dir.create(out, recursive = TRUE, showWarnings = FALSE)
set.seed(42)
features <- c("Sepal.Length", "Sepal.Width", "Petal.Length", "Petal.Width")
rf_xy <- randomForest(x = iris[, features], y = iris$Species, ntree = 50)

# --- MLflow crate ---------------------------------------------------------------
d <- file.path(out, "mlflow-crate")
dir.create(d, showWarnings = FALSE)
crate_env <- new.env(parent = globalenv())
crate_env$model <- rf_xy
crate_env$columns <- c(sepal_length = "Sepal.Length", sepal_width = "Sepal.Width",
                       petal_length = "Petal.Length", petal_width = "Petal.Width")
fn <- local(envir = crate_env, function(newdata) {
  requireNamespace("randomForest", quietly = TRUE)
  x <- data.frame(lapply(names(columns), function(n) as.numeric(newdata[[n]])))
  names(x) <- unname(columns)
  as.character(stats::predict(model, x))
})
class(fn) <- c("crate", "function")
saveRDS(serialize(fn, NULL), file.path(d, "crate.bin"))
writeLines(c(
  "artifact_path: model",
  "flavors:",
  "  crate:",
  "    version: 0.1.0",
  "    model: crate.bin",
  "run_id: 1f9c2d3e4b5a69788796a5b4c3d2e1f0",
  "utc_time_created: '2024-05-01 10:00:00.000000'"), file.path(d, "MLmodel"))

# --- MLflow python_function only ------------------------------------------------
d <- file.path(out, "mlflow-python")
dir.create(d, showWarnings = FALSE)
writeLines(c(
  "artifact_path: model",
  "flavors:",
  "  python_function:",
  "    env:",
  "      conda: conda.yaml",
  "      virtualenv: python_env.yaml",
  "    loader_module: mlflow.sklearn",
  "    model_path: model.pkl",
  "    predict_fn: predict",
  "    python_version: 3.11.4",
  "  sklearn:",
  "    pickled_model: model.pkl",
  "    serialization_format: cloudpickle",
  "    sklearn_version: 1.3.0",
  "mlflow_version: 2.9.2",
  "model_uuid: 6d1f4ab2c3e84d5f9a7b8c9d0e1f2a3b"), file.path(d, "MLmodel"))
writeBin(as.raw(c(0x80, 0x04, 0x2e)), file.path(d, "model.pkl"))

# --- bare .rds --------------------------------------------------------------------
saveRDS(lm(mpg ~ cyl + disp, data = mtcars), file.path(out, "lm.rds"))
saveRDS(randomForest(Species ~ ., data = iris, ntree = 50), file.path(out, "rf.rds"))

# --- vetiver pin in a pins board folder ------------------------------------------
created <- format(as.POSIXct("2024-05-01 10:00:00", tz = "UTC"), "%Y%m%dT%H%M%SZ", tz = "UTC")
tmp <- tempfile(fileext = ".rds")
saveRDS(list(model = rf_xy, prototype = iris[0, features]), tmp, version = 2)
hash <- substr(unname(tools::md5sum(tmp)), 1, 16)
v <- file.path(out, "board", "iris-rf", paste0(created, "-", substr(hash, 1, 5)))
dir.create(v, recursive = TRUE, showWarnings = FALSE)
invisible(file.copy(tmp, file.path(v, "iris-rf.rds")))
writeLines(c(
  "file: iris-rf.rds",
  paste0("file_size: ", file.size(file.path(v, "iris-rf.rds"))),
  paste0("pin_hash: ", hash),
  "type: rds",
  "title: 'iris-rf: a pinned list'",
  "description: A randomForest classification model",
  "tags: ~",
  "urls: ~",
  paste0("created: ", created),
  "api_version: 1",
  "user:",
  "  required_pkgs: randomForest"), file.path(v, "data.txt"))
cat("wrote", out, "\n")
