# train.R
# Trains the three small models of the multi-model example and saves them as
# models/a.rds, models/b.rds and models/c.rds, next to this file (or in the
# folder given as the first argument):
#
#   Rscript train.R
#   Rscript train.R /some/dir
#
# Each model predicts from two numeric features, x1 and x2, like the models of
# Azure's r/multimodel-plumber example (those are lm fits and can be dropped
# into models/ instead; see README.md). Base R only (stats).

script_file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
script_dir <- if (length(script_file) == 1) dirname(normalizePath(script_file)) else getwd()

args <- commandArgs(trailingOnly = TRUE)
out_dir <- if (length(args) >= 1) args[[1]] else file.path(script_dir, "models")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)

set.seed(2022)
n <- 200
d <- data.frame(x1 = rnorm(n), x2 = rnorm(n))
d$y_a <- 0.5 + 2 * d$x1 - 1 * d$x2 + rnorm(n, sd = 0.1)
d$y_b <- -1 + 0.5 * d$x1 + 3 * d$x2 + 0.8 * d$x1 * d$x2 + rnorm(n, sd = 0.2)
d$y_c <- rbinom(n, 1, plogis(0.3 + 1.5 * d$x1 - 2 * d$x2))

# The fits happen at top level, so each formula's environment is the global
# environment, which saveRDS() stores as a reference: the .rds files hold the
# fitted models and nothing else from this session.
models <- list(
  a = lm(y_a ~ x1 + x2, data = d),                        # linear
  b = lm(y_b ~ x1 * x2, data = d),                        # linear with interaction
  c = glm(y_c ~ x1 + x2, data = d, family = binomial())   # logistic: type = "response" gives P(y = 1)
)

for (name in names(models)) {
  file <- file.path(out_dir, paste0(name, ".rds"))
  saveRDS(models[[name]], file)
  cat(sprintf("wrote %s (%s, %d bytes): %s\n", normalizePath(file),
              class(models[[name]])[1], file.size(file),
              paste(sprintf("%s=%.3f", names(coef(models[[name]])), coef(models[[name]])), collapse = " ")))
}
