# An exit hook runs when plumber's own server stops; the lean runtime has
# no such moment, so this API is served by plumber's own server.

#* @plumber
function(pr) {
  plumber::pr_hook(pr, "exit", function() message("bye"))
}

#* @get /hello
function() "hello"
