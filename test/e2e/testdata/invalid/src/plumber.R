#* @get /live
function() "alive"

#* @post /score
function() list(ok = TRUE)
