# A plumber hello-world for BenchmarkPlumberUpstream.

#* @get /hello
#* @serializer unboxedJSON
function() {
  list(msg = "hi")
}
