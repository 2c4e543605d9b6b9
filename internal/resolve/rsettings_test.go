package resolve_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/plumbline/plumbline/internal/plumber"
)

func TestRSettingsAndSampleRequest(t *testing.T) {
	f := newFixture(t)
	code := f.upload("src", map[string]string{"plumber.R": "#* @get /live\nfunction() 1\n"})
	dep := base + "code_configuration: {code: " + code + ", scoring_script: plumber.R}\nenvironment: {image: rstudio/plumber}\n"
	tests := []struct {
		name         string
		serverDetail bool
		extra        string
		want         map[string]string
	}{
		{"server default on", true, "",
			map[string]string{plumber.EnvEndpoint: "ep", plumber.EnvDeployment: "blue", plumber.EnvErrorDetail: "true"}},
		{"server default off", false, "",
			map[string]string{plumber.EnvEndpoint: "ep", plumber.EnvDeployment: "blue", plumber.EnvErrorDetail: "false"}},
		{"the deployment's setting wins", true, "plumbline: {error_detail: false}\n",
			map[string]string{plumber.EnvEndpoint: "ep", plumber.EnvDeployment: "blue", plumber.EnvErrorDetail: "false"}},
		{"the user's variables win", false, "environment_variables: {PLUMBLINE_ERROR_DETAIL: 'true', MODE: x}\n",
			map[string]string{plumber.EnvEndpoint: "ep", plumber.EnvDeployment: "blue", plumber.EnvErrorDetail: "true", "MODE": "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.res.ErrorDetail = tt.serverDetail
			rec, err := f.resolve(dep + tt.extra)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, rec.Plan.Env); d != "" {
				t.Errorf("instance environment (-want +got):\n%s", d)
			}
		})
	}

	t.Run("sample request", func(t *testing.T) {
		rec, err := f.resolve(dep + "plumbline:\n  sample_request: {wt: [2.6], hp: [110]}\n")
		if err != nil {
			t.Fatal(err)
		}
		var got any
		if err := json.Unmarshal(rec.Plan.SampleRequest, &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"wt": []any{2.6}, "hp": []any{float64(110)}}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("plan's sample request (-want +got):\n%s", d)
		}
		plain, err := f.resolve(dep)
		if err != nil {
			t.Fatal(err)
		}
		if plain.Plan.TemplateHash() != rec.Plan.TemplateHash() {
			t.Errorf("a sample request changed the template hash: it must not restart instances")
		}
	})
}
