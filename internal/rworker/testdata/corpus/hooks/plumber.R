# Hooks around routing and serialization: the lean runtime runs these
# through pr$call(), as plumber's own server does.

#* @plumber
function(pr) {
  plumber::pr_hooks(pr, list(
    preroute = function(data, req) { data$start <- "pre"; invisible(NULL) },
    postserialize = function(data, req, res, value) {
      value$headers[["X-Hooked"]] <- data$start
      value
    }
  ))
}

#* @serializer unboxedJSON
#* @get /hooked
function() list(ok = TRUE)
