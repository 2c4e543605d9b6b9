# train.R: the benchmarks' slower model, a 500-tree ranger random forest on
# R's iris data, saved as <dir>/model.rds (default: models/ next to this file).
#
#   Rscript train.R [dir]
#
# It scores the same requests as examples/r-iris (sample_request.json), about
# twenty times slower: every prediction walks 500 trees. Packages: ranger
# (Debian: r-cran-ranger).
script_file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
script_dir <- if (length(script_file) == 1) dirname(normalizePath(script_file)) else getwd()
args <- commandArgs(trailingOnly = TRUE)
out_dir <- if (length(args) >= 1) args[[1]] else file.path(script_dir, "models")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)

suppressPackageStartupMessages(library(ranger))
set.seed(42)
model <- ranger(Species ~ ., data = iris, num.trees = 500, num.threads = 1)
saveRDS(model, file.path(out_dir, "model.rds"))
cat(sprintf("trained ranger: %d trees, OOB error %.4f; wrote %s\n", model$num.trees, model$prediction.error,
            normalizePath(file.path(out_dir, "model.rds"))))
