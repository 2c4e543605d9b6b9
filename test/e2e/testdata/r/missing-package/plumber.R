# A scoring script that needs a package nobody has installed.
library(notapkg123)

#* @get /live
function() "alive"

#* @post /score
function() list(ok = TRUE)
