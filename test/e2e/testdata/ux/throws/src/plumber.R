# A scoring function in the shape the first-hour report met: a model that
# needs a column (cyl) some callers do not send. With it: a prediction.
# Without it, R's error: object 'cyl' not found.

#* @get /live
function() "alive"

#* @post /score
#* @serializer unboxedJSON
function(req) {
  newdata <- as.data.frame(jsonlite::fromJSON(rawToChar(req$bodyRaw)))
  message("scoring ", nrow(newdata), " row(s)")
  list(prediction = I(with(newdata, 37 - 3.9 * wt - 0.5 * cyl)))
}
