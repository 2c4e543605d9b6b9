# train.R
# Trains a random forest on R's built-in iris data and saves a *crate*, the
# registered-model form the seed article deploys: models/crate.bin.
#
#   Rscript train.R                # writes models/crate.bin next to this file
#   Rscript train.R /some/dir      # writes /some/dir/crate.bin
#   Rscript train.R /some/dir 7    # ... trained with random seed 7 (default 42):
#                                  # another model, e.g. a second version for green
#
# About the crate. Azure's R articles wrap the model with carrier::crate() and
# log it with MLflow, whose crate flavour stores it as
#     saveRDS(serialize(crated_fn, NULL), file.path(path, "crate.bin"))
# and loads it back with unserialize(readRDS(".../crate.bin")). The carrier
# package is not packaged for Debian, so this script builds the same thing by
# hand: a crate is just a self-contained closure (explicit namespaces inside,
# an environment holding only what it needs) saved with
# saveRDS(serialize(fn, NULL)). src/plumber.R cannot tell the difference, and
# neither can Azure: a carrier crate is a function too.
#
# Packages: randomForest (Debian: r-cran-randomforest) and base R only.

# --- where am I? -------------------------------------------------------------
# Rscript passes "--file=<path to this script>"; use it so the script works
# from any working directory.
script_file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
script_dir <- if (length(script_file) == 1) dirname(normalizePath(script_file)) else getwd()

args <- commandArgs(trailingOnly = TRUE)
out_dir <- if (length(args) >= 1) args[[1]] else file.path(script_dir, "models")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)

suppressPackageStartupMessages(library(randomForest))

# --- train -------------------------------------------------------------------
seed <- if (length(args) >= 2) as.integer(args[[2]]) else 42L
set.seed(seed)
features <- c("Sepal.Length", "Sepal.Width", "Petal.Length", "Petal.Width")
# The x/y interface (not a formula) keeps the fitted object free of a terms
# object and its environment.
rf <- randomForest(x = iris[, features], y = iris$Species, ntree = 50)

train_pred <- predict(rf, iris[, features])
accuracy <- mean(train_pred == iris$Species)
oob_error <- rf$err.rate[rf$ntree, "OOB"]

# --- crate -------------------------------------------------------------------
# The closure's environment is a fresh one whose parent is the global
# environment (serialized as a reference, not by value), holding only the
# fitted forest and the column mapping. Nothing else from this training
# session goes into crate.bin.
crate_env <- new.env(parent = globalenv())
crate_env$model <- rf
# request field name -> the model's column name
crate_env$columns <- c(
  sepal_length = "Sepal.Length",
  sepal_width  = "Sepal.Width",
  petal_length = "Petal.Length",
  petal_width  = "Petal.Width"
)

scoring_fn <- local(envir = crate_env, function(newdata, probabilities = FALSE) {
  # Loading the namespace registers predict.randomForest as an S3 method, so
  # stats::predict() below dispatches to it.
  if (!requireNamespace("randomForest", quietly = TRUE)) {
    stop("this crate needs the randomForest package")
  }
  newdata <- as.data.frame(newdata)
  missing_cols <- setdiff(names(columns), names(newdata))
  if (length(missing_cols) > 0) {
    stop("missing column(s): ", paste(missing_cols, collapse = ", "))
  }
  x <- data.frame(lapply(names(columns), function(n) as.numeric(newdata[[n]])))
  names(x) <- unname(columns)
  species <- as.character(stats::predict(model, x, type = "response"))
  if (!probabilities) {
    return(species)
  }
  prob <- stats::predict(model, x, type = "prob")
  data.frame(species = species, as.data.frame(unclass(prob), row.names = NULL),
             check.names = FALSE)
})

crate_file <- file.path(out_dir, "crate.bin")
saveRDS(serialize(scoring_fn, NULL), crate_file)

cat(sprintf("trained randomForest: ntree=%d, training accuracy=%.4f, OOB error=%.4f\n",
            rf$ntree, accuracy, oob_error))
cat(sprintf("wrote %s (%d bytes)\n", normalizePath(crate_file), file.size(crate_file)))
