// Package snippet writes the ready-to-paste calls of an endpoint — a shell
// line that exports its key, a curl command and an R httr2 call — that
// `plumbline up` prints and the studio shows, so that both show the same
// text and it works as pasted, from any folder: absolute paths, an
// exported variable, the CA file when the server's certificate comes from
// plumbline's local CA.
//
// It only formats text; it must not import anything else of plumbline.
package snippet

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Input is what the snippets are made of.
type Input struct {
	Endpoint   string
	ScoringURI string
	// AuthMode is key, aml_token or aad_token.
	AuthMode string
	// CLI is the plumbline command, best an absolute path; "" means
	// "plumbline".
	CLI string
	// CLIArgs are global flags the CLI needs to reach the server, e.g.
	// --data-dir when the server's data dir is not the default.
	CLIArgs []string
	// CACert is the CA file that signs the server's certificate (absolute);
	// "" when clients trust the certificate already.
	CACert string
	// RequestFile is the absolute path of a JSON request file; when "",
	// Request is sent inline if it is at most MaxInline bytes, else the
	// snippets read request.json in the current folder.
	RequestFile string
	Request     json.RawMessage
}

// MaxInline is the largest request (compact JSON) the snippets carry inline.
const MaxInline = 1024

// Snippets are the three ready-to-paste texts.
type Snippets struct {
	// Shell exports KEY, the endpoint's key or token. Run it first, in the
	// shell that runs curl or starts R.
	Shell string `json:"shell"`
	// Curl scores the request with curl.
	Curl string `json:"curl"`
	// R scores it with httr2, reading KEY from the environment.
	R string `json:"r"`
}

// Make builds the snippets.
func Make(in Input) Snippets {
	cli := in.CLI
	if cli == "" {
		cli = "plumbline"
	}
	words := []string{shellQuote(cli)}
	for _, a := range in.CLIArgs {
		words = append(words, shellQuote(a))
	}
	var shell string
	switch in.AuthMode {
	case "aad_token":
		shell = `export KEY="<a token from your OpenID Connect provider for this endpoint>"`
	default:
		field := "primaryKey"
		if in.AuthMode == "aml_token" {
			field = "accessToken"
		}
		words = append(words, "online-endpoint", "get-credentials", "--name", shellQuote(in.Endpoint), "--query", field, "-o", "tsv")
		shell = `export KEY="$(` + strings.Join(words, " ") + `)"`
	}

	var curlData, rBody string
	switch {
	case in.RequestFile != "":
		curlData = "--data-binary @" + shellQuote(in.RequestFile)
		rBody = "req_body_file(" + rQuote(in.RequestFile) + `, type = "application/json")`
	case len(in.Request) > 0 && len(compact(in.Request)) <= MaxInline:
		body := compact(in.Request)
		curlData = "--data-binary " + shellQuote(body)
		rBody = "req_body_raw(" + rQuote(body) + `, type = "application/json")`
	default:
		curlData = "--data-binary @request.json"
		rBody = `req_body_file("request.json", type = "application/json")`
	}

	var curl strings.Builder
	curl.WriteString("curl")
	if in.CACert != "" {
		curl.WriteString(" --cacert " + shellQuote(in.CACert))
	}
	curl.WriteString(` -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \` + "\n")
	curl.WriteString("     " + curlData + " \\\n")
	curl.WriteString("     " + shellQuote(in.ScoringURI))

	var r strings.Builder
	r.WriteString("library(httr2)\n")
	r.WriteString("request(" + rQuote(in.ScoringURI) + ") |>\n")
	r.WriteString(`  req_auth_bearer_token(Sys.getenv("KEY")) |>` + "\n")
	r.WriteString("  " + rBody + " |>\n")
	if in.CACert != "" {
		r.WriteString("  req_options(cainfo = " + rQuote(in.CACert) + ") |>\n")
	}
	r.WriteString("  req_perform() |>\n")
	r.WriteString("  resp_body_json()")

	return Snippets{Shell: shell, Curl: curl.String(), R: r.String()}
}

// compact is the request on one line, its text otherwise kept.
func compact(b json.RawMessage) string {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return strings.TrimSpace(string(b))
	}
	return out.String()
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@=,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// rQuote quotes s as an R string literal.
func rQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}
