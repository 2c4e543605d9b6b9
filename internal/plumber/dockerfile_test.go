package plumber

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestDockerfilePackages(t *testing.T) {
	seed, err := os.ReadFile("testdata/seed/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"seed Dockerfile", string(seed), []string{"carrier"}},
		{"vector", `RUN R -e "install.packages(c('ranger', \"xgboost\"), repos = 'https://cloud.r-project.org/')"`,
			[]string{"ranger", "xgboost"}},
		{"pkgs argument", `RUN Rscript -e 'install.packages(repos = "https://x", pkgs = "glmnet")'`, []string{"glmnet"}},
		{"continuation and &&", "RUN apt-get update && \\\n    R -e \"install.packages('forecast')\" \\\n && rm -rf /tmp/*",
			[]string{"forecast"}},
		{"comment line inside continuation", "RUN R -e \"install.packages('a1')\" \\\n# R -e \"install.packages('skipped')\"\n  && echo done",
			[]string{"a1"}},
		{"commented-out instruction", "# RUN R -e \"install.packages('nope')\"\nFROM r-base", nil},
		{"github", `RUN R -e "remotes::install_github('tidyverts/fable@v0.3.0'); devtools::install_github('org/mono/pkgs/inner')"`,
			[]string{"fable", "inner"}},
		{"install_version and cran", `RUN R -e "remotes::install_version('dplyr', version = '1.1.0'); remotes::install_cran('vctrs')"`,
			[]string{"dplyr", "vctrs"}},
		{"install_git url", `RUN R -e "remotes::install_git('https://git.example.com/team/scorer.git')"`, []string{"scorer"}},
		{"bioconductor", `RUN R -e "BiocManager::install(c('limma', 'edgeR'))"`, []string{"edgeR", "limma"}},
		{"pak", `RUN R -e "pak::pkg_install(c('jsonlite', 'github::r-lib/cli')); pak::pak('tidymodels/parsnip')"`,
			[]string{"cli", "jsonlite", "parsnip"}},
		{"littler", `RUN install2.r --error --skipinstalled -n 4 -r https://cloud.r-project.org ranger caret --deps TRUE`,
			[]string{"caret", "ranger"}},
		{"littler github", `RUN installGithub.r r-lib/cli@v3.6.0 rstudio/vetiver-r`, []string{"cli"}},
		{"littler github invalid name dropped", `RUN installGithub.r rstudio/vetiver-r`, nil},
		{"apt", "RUN apt-get update && apt-get install -y --no-install-recommends \\\n  r-cran-data.table r-cran-rcpp=1.0.10-1 r-bioc-limma libcurl4-openssl-dev",
			[]string{"data.table", "limma", "rcpp"}},
		{"apt without install", `RUN apt-get remove r-cran-foo`, nil},
		{"exec form", `RUN ["Rscript", "-e", "install.packages('lme4')"]`, []string{"lme4"}},
		{"piped into R", `RUN echo "install.packages('zoo')" | R --no-save`, []string{"zoo"}},
		{"not a RUN", `CMD ["R", "-e", "install.packages('nope')"]`, nil},
		{"install.packages of a variable", `RUN R -e "pkgs <- readLines('p.txt'); install.packages(pkgs)"`, nil},
		{"lower-case run", `run R -e "install.packages('lower')"`, []string{"lower"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DockerfilePackages([]byte(tt.src))
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("DockerfilePackages() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDockerfileFrom(t *testing.T) {
	seed, err := os.ReadFile("testdata/seed/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"seed", string(seed), "rstudio/plumber:latest"},
		{"none", "RUN echo hi", ""},
		{"platform flag and alias", "FROM --platform=linux/amd64 rocker/r-ver:4.3 AS base\nRUN x", "rocker/r-ver:4.3"},
		{"final stage wins", "FROM golang:1.22 AS build\nFROM rstudio/plumber:v1.2.0\nCOPY --from=build /x /x", "rstudio/plumber:v1.2.0"},
		{"stage of a stage", "FROM rstudio/plumber:latest AS base\nRUN x\nFROM base AS final\nFROM final", "rstudio/plumber:latest"},
		{"args", "ARG REG=myacr.azurecr.io\nARG TAG=\"1.0\"\nFROM ${REG}/r-plumber:$TAG", "myacr.azurecr.io/r-plumber:1.0"},
		{"arg default", "ARG TAG\nFROM rocker/r-ver:${TAG:-4.2.2}", "rocker/r-ver:4.2.2"},
		{"lower-case from", "from r-base", "r-base"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DockerfileFrom([]byte(tt.src)); got != tt.want {
				t.Errorf("DockerfileFrom() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIsPlumberImage(t *testing.T) {
	tests := []struct {
		ref  string
		want bool
	}{
		{"rstudio/plumber", true},
		{"rstudio/plumber:latest", true},
		{"docker.io/rstudio/plumber@sha256:0123abcd", true},
		{"myacr.azurecr.io/team/R-Plumber-base:2", true},
		{"rocker/r-ver:4.3.1", false},
		{"r-base", false},
		{"localhost:5000/r-ver:plumber", false}, // "plumber" only in the tag
		{"localhost:5000/plumber", true},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			if got := IsPlumberImage(tt.ref); got != tt.want {
				t.Errorf("IsPlumberImage(%q) = %v, want %v", tt.ref, got, tt.want)
			}
		})
	}
}

func FuzzDockerfilePackages(f *testing.F) {
	seed, err := os.ReadFile("testdata/seed/Dockerfile")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("RUN [\"R\"\nRUN \"'\\"))
	f.Fuzz(func(t *testing.T, src []byte) {
		for _, p := range DockerfilePackages(src) {
			if !ValidPackageName(p) {
				t.Errorf("DockerfilePackages returned invalid name %q", p)
			}
		}
		DockerfileFrom(src)
	})
}
