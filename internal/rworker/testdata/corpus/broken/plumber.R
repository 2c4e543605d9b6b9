#* @get /x
function() {
  1 +* 2
}
