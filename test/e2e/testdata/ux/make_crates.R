# Writes the crates of the crate-check test, as R users write them:
#   good/models/crate.bin  a scoring closure that captured its model (local())
#   bad/models/crate.bin   the 106-byte crate of the first-hour report: a
#                          function defined at top level, saved without the
#                          model it uses
# Run: Rscript make_crates.R OUT_DIR
out <- commandArgs(trailingOnly = TRUE)[1]
dir.create(file.path(out, "good", "models"), recursive = TRUE, showWarnings = FALSE)
dir.create(file.path(out, "bad", "models"), recursive = TRUE, showWarnings = FALSE)
model <- stats::lm(mpg ~ wt + hp, data = mtcars)
model$model <- NULL
good <- local({
  m <- model
  function(newdata) as.numeric(stats::predict(m, newdata = as.data.frame(newdata)))
})
saveRDS(serialize(good, NULL), file.path(out, "good", "models", "crate.bin"))
bad <- function(newdata) predict(model, newdata)
environment(bad) <- globalenv()
saveRDS(serialize(bad, NULL), file.path(out, "bad", "models", "crate.bin"))
