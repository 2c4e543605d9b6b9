package snippet

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMake(t *testing.T) {
	base := Input{
		Endpoint: "r-endpoint-iris", ScoringURI: "https://localhost:8443/endpoints/r-endpoint-iris/score", AuthMode: "key",
		CLI: "/opt/plumbline/bin/plumbline", CACert: "/home/ana/.local/share/plumbline/tls/ca.crt",
		Request: []byte("{\n  \"sepal_length\": [6.7],\n  \"n\": [1000000]\n}\n"),
	}
	got := Make(base)
	want := Snippets{
		Shell: `export KEY="$(/opt/plumbline/bin/plumbline online-endpoint get-credentials --name r-endpoint-iris --query primaryKey -o tsv)"`,
		Curl: `curl --cacert /home/ana/.local/share/plumbline/tls/ca.crt -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \
     --data-binary '{"sepal_length":[6.7],"n":[1000000]}' \
     https://localhost:8443/endpoints/r-endpoint-iris/score`,
		R: `library(httr2)
request("https://localhost:8443/endpoints/r-endpoint-iris/score") |>
  req_auth_bearer_token(Sys.getenv("KEY")) |>
  req_body_raw("{\"sepal_length\":[6.7],\"n\":[1000000]}", type = "application/json") |>
  req_options(cainfo = "/home/ana/.local/share/plumbline/tls/ca.crt") |>
  req_perform() |>
  resp_body_json()`,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("snippets (-want +got):\n%s", d)
	}

	t.Run("a request file, a data dir, a token, quoting", func(t *testing.T) {
		in := base
		in.AuthMode = "aml_token"
		in.CLIArgs = []string{"--data-dir", "/tmp/my data"}
		in.RequestFile = "/work/it's/sample_request.json"
		in.CACert = ""
		got := Make(in)
		for _, w := range []string{
			`--data-dir '/tmp/my data' online-endpoint get-credentials --name r-endpoint-iris --query accessToken -o tsv`,
		} {
			if !strings.Contains(got.Shell, w) {
				t.Errorf("shell %q lacks %q", got.Shell, w)
			}
		}
		if !strings.Contains(got.Curl, `--data-binary @'/work/it'\''s/sample_request.json'`) || strings.Contains(got.Curl, "--cacert") {
			t.Errorf("curl:\n%s\nwant the quoted file and no --cacert", got.Curl)
		}
		if !strings.Contains(got.R, `req_body_file("/work/it's/sample_request.json", type = "application/json")`) || strings.Contains(got.R, "cainfo") {
			t.Errorf("R:\n%s\nwant the file and no cainfo", got.R)
		}
	})

	t.Run("a large request is read from request.json", func(t *testing.T) {
		in := base
		in.Request = []byte(`{"x":"` + strings.Repeat("a", MaxInline) + `"}`)
		got := Make(in)
		if !strings.Contains(got.Curl, "--data-binary @request.json") || !strings.Contains(got.R, `req_body_file("request.json"`) {
			t.Errorf("got\n%s\n%s", got.Curl, got.R)
		}
	})

	t.Run("aad_token", func(t *testing.T) {
		in := base
		in.AuthMode = "aad_token"
		if got := Make(in).Shell; !strings.HasPrefix(got, `export KEY="<a token`) {
			t.Errorf("shell = %q", got)
		}
	})
}
