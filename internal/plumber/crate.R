# Checks crates: for each file given (a crate.bin, written with
# saveRDS(serialize(fn, NULL), path)), reads it back as a new R session
# would and reports, one line per finding, marked so that nothing else R
# prints can be mistaken for one:
#   plumbline-crate<TAB>path<TAB>global<TAB>            the function's environment is the global one
#   plumbline-crate<TAB>path<TAB>missing<TAB>a,b        names it uses that neither it nor base R has
#   plumbline-crate<TAB>path<TAB>unreadable<TAB>why     readRDS/unserialize failed
# A file that holds something other than a function (a fitted model) is
# not a crate and is skipped.
free_names <- function(fn) {
  assigned <- character()
  collect <- function(e) {
    if (!is.call(e)) return(invisible())
    h <- e[[1]]
    if (is.symbol(h)) {
      op <- as.character(h)
      if (op %in% c("<-", "=", "<<-") && length(e) >= 2 && is.symbol(e[[2]])) assigned <<- c(assigned, as.character(e[[2]]))
      if (op == "for" && length(e) >= 2) assigned <<- c(assigned, as.character(e[[2]]))
      if (op == "function" && length(e) >= 2) assigned <<- c(assigned, names(e[[2]]))
      if (op == "assign" && length(e) >= 2 && is.character(e[[2]])) assigned <<- c(assigned, e[[2]])
      if (op %in% c("quote", "~")) return(invisible())
    }
    for (a in as.list(e)) collect(a)
  }
  used <- character()
  walk <- function(e) {
    if (is.symbol(e)) {
      used <<- c(used, as.character(e))
      return(invisible())
    }
    if (!is.call(e)) return(invisible())
    h <- e[[1]]
    if (is.symbol(h)) {
      op <- as.character(h)
      if (op %in% c("::", ":::", "quote", "~")) return(invisible())
      if (op %in% c("$", "@")) return(walk(e[[2]]))
      if (op == "function") return(walk(e[[3]]))
    }
    for (a in as.list(e)) walk(a)
  }
  b <- body(fn)
  collect(b)
  walk(b)
  used <- unique(used)
  used <- used[nzchar(used) & !grepl("^\\.\\.", used) & used != "..."]
  setdiff(used, c(assigned, names(formals(fn))))
}

for (path in commandArgs(trailingOnly = TRUE)) {
  report <- function(kind, detail = "") cat("plumbline-crate\t", path, "\t", kind, "\t", detail, "\n", sep = "")
  fn <- tryCatch({
    x <- readRDS(path)
    if (is.raw(x)) unserialize(x) else x
  }, error = function(e) {
    report("unreadable", gsub("[\t\r\n]+", " ", conditionMessage(e)))
    NULL
  })
  if (!is.function(fn) || is.primitive(fn)) next
  env <- environment(fn)
  if (identical(env, globalenv())) report("global")
  names <- tryCatch(free_names(fn), error = function(e) character())
  missing <- names[!vapply(names, exists, logical(1), envir = env)]
  if (length(missing) > 0) report("missing", paste(sort(missing), collapse = ","))
}
cat("plumbline-crate-done\n")
