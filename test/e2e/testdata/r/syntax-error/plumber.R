# A scoring script with a syntax error: the list() in /score is never
# closed, so R stops parsing at the closing brace with "unexpected '}'".

#* @get /live
function() "alive"

#* @post /score
function(req) {
  list(ok = TRUE
}
