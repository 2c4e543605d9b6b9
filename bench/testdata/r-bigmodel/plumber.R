# A plumber API whose "model" is 320 MB of numbers, made at start-up: the
# benchmarks measure how much of a large model forked lean workers share
# (scenario 7's PSS of 1 vs 4 workers). It scores by reading a few of them.

weights <- local({
  set.seed(7)
  runif(4e7)
})

#* @get /live
function() "alive"

#* @serializer unboxedJSON
#* @post /score
function(req) {
  i <- (length(req$bodyRaw) * 7919L) %% length(weights) + 1L
  list(score = sum(weights[i:(i + 9L)]))
}
