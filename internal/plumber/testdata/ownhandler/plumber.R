# plumber.R with its own error handler: plumbline must keep it.

#* @plumber
function(pr) {
  pr$setErrorHandler(function(req, res, err) {
    res$status <- 503
    list(mine = conditionMessage(err))
  })
}

#* @get /live
function() "alive"

#* @post /score
function() stop("handled by plumber.R")
