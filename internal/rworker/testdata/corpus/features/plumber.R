# A plumber API that uses every feature the lean runtime must serve as
# plumber's own server does: the differential test (differential_test.go)
# sends the same requests to both and compares status, headers and body.

counter <- 0

#* A filter that rejects: /private/* needs an X-Token header.
#* @filter token
function(req, res) {
  if (startsWith(req$PATH_INFO, "/private") && is.null(req$HTTP_X_TOKEN)) {
    res$status <- 401
    return(list(error = "missing X-Token"))
  }
  plumber::forward()
}

#* A filter that only annotates the request and forwards.
#* @filter stamp
function(req) {
  req$stamped <- TRUE
  plumber::forward()
}

#* @get /hello
function() {
  list(msg = "hello", n = 1:3)
}

#* @serializer unboxedJSON
#* @get /unboxed
function() {
  list(msg = "hello", one = 1, flag = TRUE, nothing = NULL, na = NA)
}

#* Query parameters, as strings unless typed.
#* @get /sum
function(a, b) {
  as.numeric(a) + as.numeric(b)
}

#* A typed path parameter.
#* @serializer unboxedJSON
#* @get /items/<id:int>
function(id) {
  list(id = id, class = class(id), twice = id * 2L)
}

#* An untyped path parameter, which plumber does not decode.
#* @serializer unboxedJSON
#* @get /echo/<word>
function(word, req) {
  list(word = word, path = req$PATH_INFO, query = req$QUERY_STRING)
}

#* JSON body fields become arguments.
#* @serializer unboxedJSON
#* @post /args
function(x, y = 10) {
  list(total = x + y, classes = c(class(x), class(y)))
}

#* The raw body, postBody and the parsed body.
#* @serializer unboxedJSON
#* @post /body
function(req) {
  list(
    raw_length = length(req$bodyRaw),
    post_body = req$postBody,
    body_names = names(req$body),
    content_type = if (is.null(req$HTTP_CONTENT_TYPE)) "" else req$HTTP_CONTENT_TYPE,
    stamped = isTRUE(req$stamped)
  )
}

#* The parsed body itself, as the parser plumber picked made it.
#* @serializer json
#* @post /parsed
function(req) {
  list(body = req$body, class = class(req$body), encoding = if (is.character(req$body)) Encoding(req$body))
}

#* A header value with line breaks (not part of the differential calls:
#* plumber's own server would write them as they are).
#* @serializer unboxedJSON
#* @get /linebreaks
function(res) {
  res$setHeader("X-Lines", "a\nb\r\nc")
  list(ok = TRUE)
}

#* Handlers of req and res alone: the lean router may parse their JSON
#* body only when they read it.
#* @serializer unboxedJSON
#* @post /ignores-body
function(req) {
  list(ok = TRUE, raw = length(req$bodyRaw))
}

#* @serializer json
#* @post /reads-body
function(req, res) {
  list(body = req$body, args = names(req$args), args_body = names(req$argsBody), class = class(req$body))
}

#* @serializer unboxedJSON
#* @post /no-args
function() {
  list(ok = TRUE)
}

#* A form body.
#* @serializer unboxedJSON
#* @post /form
function(name, age) {
  list(name = name, age = as.integer(age))
}

#* Headers, status and cookies set by the handler.
#* @serializer unboxedJSON
#* @post /created
function(req, res) {
  res$status <- 201
  res$setHeader("X-Custom", "plumbline")
  res$setCookie("session", "abc")
  list(created = TRUE, agent = req$HTTP_USER_AGENT)
}

#* A handler that stops: plumber's 500.
#* @get /fail
function() {
  stop("this handler always fails")
}

#* A handler that warns and answers.
#* @get /warn
function() {
  warning("a warning from the handler")
  "warned"
}

#* Status set without a body change.
#* @serializer unboxedJSON
#* @get /teapot
function(res) {
  res$status <- 418L
  list(error = "I'm a teapot")
}

#* @serializer text
#* @get /text
function() {
  "plain text, accents: é ü"
}

#* @serializer csv
#* @get /csv
function() {
  data.frame(x = 1:3, y = c("a", "b", "c"))
}

#* @serializer png
#* @get /plot
function() {
  plot(1:10, main = "plumbline")
}

#* @serializer html
#* @get /html
function() {
  "<p>hello</p>"
}

#* The response object returned as is.
#* @get /raw
function(res) {
  res$setHeader("Content-Type", "text/x-custom")
  res$body <- "set directly"
  res
}

#* Behind the token filter.
#* @serializer unboxedJSON
#* @get /private/data
function(req) {
  list(secret = 42, token = req$HTTP_X_TOKEN)
}

#* Runs before the token filter: never rejected.
#* @preempt token
#* @serializer unboxedJSON
#* @get /private/open
function() {
  list(open = TRUE)
}

#* Several verbs on one path.
#* @serializer unboxedJSON
#* @get /multi
#* @put /multi
function(req) {
  list(method = req$REQUEST_METHOD)
}

#* A large body in and out.
#* @serializer unboxedJSON
#* @post /big
function(req) {
  list(bytes = length(req$bodyRaw), first = rawToChar(req$bodyRaw[1:5]))
}

#* A response larger than a pipe's buffer.
#* @serializer text
#* @get /large
function() {
  strrep("0123456789", 100000)
}

#* plumber's JSON serializers: the lean router calls jsonlite itself for
#* the default ones, and the serializer for any other.
#* @serializer unboxedJSON
#* @get /json/values
function() {
  list(int = 1L, dbl = 3.14159265, na = NA, inf = -Inf, null = NULL, chr = c("a", NA),
       utf8 = "\u00e9t\u00e9", latin1 = iconv("\u00fc", "UTF-8", "latin1"), empty = list(),
       df = data.frame(x = 1:2, f = factor(c("u", "v"))), m = matrix(1:4, 2), boxed = I(1),
       when = as.Date("2026-01-02"), nested = list(a = list(b = TRUE)))
}

#* @serializer json
#* @get /json/boxed
function() {
  list(one = 1, text = "x", df = data.frame(x = c(1.5, NA)))
}

#* json with arguments of its own: not the default serializer.
#* @serializer json list(digits = 8, auto_unbox = TRUE)
#* @get /json/digits
function() {
  list(pi = pi)
}

#* unboxedJSON with another content type.
#* @serializer unboxedJSON list(type = "application/vnd.plumbline+json")
#* @get /json/typed
function() {
  list(ok = TRUE)
}

#* A handler that picks another serializer for its own answer.
#* @serializer unboxedJSON
#* @get /json/switch
function(res) {
  res$serializer <- plumber::serializer_json(pretty = TRUE)
  list(pretty = TRUE, n = 1:2)
}

#* A status without a body.
#* @serializer unboxedJSON
#* @get /json/nocontent
function(res) {
  res$status <- 204L
  list(ignored = TRUE)
}

#* An attachment: the serializer itself writes it.
#* @serializer unboxedJSON
#* @get /json/attachment
function() {
  plumber::as_attachment(list(a = 1), "answer.json")
}

#* Whether the /sum handler runs compiled: the lean runtime compiles
#* plumber.R's functions before forking its workers (plumber's own server
#* compiles them when first called). Not part of the differential calls.
#* @serializer unboxedJSON
#* @get /compiled
function(req) {
  sum_endpoint <- Filter(function(e) identical(e$path, "/sum"), req$pr$endpoints[[1]])[[1]]
  list(compiled = any(grepl("bytecode", capture.output(print(sum_endpoint$getFunc())))))
}

#* Static files.
#* @assets ./static /static
list()

#* A mounted router.
#* @plumber
function(pr) {
  sub <- plumber::pr()
  sub <- plumber::pr_get(sub, "/ping", function() list(pong = TRUE), serializer = plumber::serializer_unboxed_json())
  plumber::pr_mount(pr, "/sub", sub)
}
