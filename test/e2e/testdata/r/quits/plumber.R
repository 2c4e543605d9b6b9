# A scoring script whose R process exits on its third scoring request, as a
# crash would: the first two answer {"n": 1} and {"n": 2}.
calls <- 0

#* @get /live
function() "alive"

#* @serializer unboxedJSON
#* @post /score
function() {
  calls <<- calls + 1
  if (calls >= 3) quit(save = "no", status = 1)
  list(n = calls)
}
