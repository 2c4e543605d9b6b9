# train.R — builds models/crate.bin, the model that src/plumber.R loads.
#
#   Rscript train.R
#
# A crate is a self-contained scoring closure (explicit namespaces inside, an
# environment holding only what it needs) saved with
# saveRDS(serialize(fn, NULL), "crate.bin") — what carrier::crate() and
# MLflow's crate flavour produce. Replace the model below with yours.

script_file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
script_dir <- if (length(script_file) == 1) dirname(normalizePath(script_file)) else getwd()
out_dir <- file.path(script_dir, "models")
dir.create(out_dir, showWarnings = FALSE)

# An example model: miles per gallon from weight and horsepower.
fit <- stats::lm(mpg ~ wt + hp, data = mtcars)
fit$model <- NULL # keep the crate small

crate_env <- new.env(parent = globalenv())
crate_env$fit <- fit
scoring_fn <- local(envir = crate_env, function(newdata) {
  as.numeric(stats::predict(fit, newdata = as.data.frame(newdata)))
})

saveRDS(serialize(scoring_fn, NULL), file.path(out_dir, "crate.bin"))
cat("wrote", file.path(out_dir, "crate.bin"), "\n")
