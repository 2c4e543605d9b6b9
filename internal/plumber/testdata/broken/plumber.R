# A plumber.R with a syntax error on line 5.

#* @get /live
function() {
  "alive" +* 1
}
