# Scoring code that tries to read the server's secrets: the admin token, the
# local CA's private key, the database and the secrets key in the data dir
# (SNOOP_DATA_DIR). Each answer is what R said: "read" when it could, the
# error (Permission denied) when not. It also says which user it runs as and
# whether it can read its own code (it must).

try_read <- function(p) {
  tryCatch({
    readBin(p, "raw", 16L)
    "read"
  }, warning = function(w) conditionMessage(w), error = function(e) conditionMessage(e))
}

#* @get /live
function() "alive"

#* @serializer unboxedJSON
#* @post /score
function() {
  dd <- Sys.getenv("SNOOP_DATA_DIR")
  list(
    uid = as.integer(system2("id", "-u", stdout = TRUE)),
    user = Sys.getenv("USER"),
    admin_token = try_read(file.path(dd, "admin.token")),
    ca_key = try_read(file.path(dd, "tls", "ca.key")),
    database = try_read(file.path(dd, "plumbline.db")),
    secrets_key = try_read(file.path(dd, "secrets.key")),
    own_code = try_read("plumber.R")
  )
}
