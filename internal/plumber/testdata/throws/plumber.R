# A scoring function that throws, as a model fitted on mtcars does when the
# request lacks a column it needs: R's error is "object 'cyl' not found".

#* @get /live
function() "alive"

#* @post /score
function(req) {
  message("scoring ", nchar(req$postBody), " bytes")
  warning("a column was coerced")
  newdata <- data.frame(wt = 2.6)
  with(newdata, wt * cyl)
}

#* A handler that sets its own status before failing.
#* @post /teapot
function(res) {
  res$status <- 418
  stop("short and stout")
}
