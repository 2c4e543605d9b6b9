package plumber

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestScriptPackages(t *testing.T) {
	seed, err := os.ReadFile("testdata/seed/plumber.R")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"seed plumber.R", string(seed), []string{"dplyr", "jsonlite", "tibble"}},
		{"library forms", `library(dplyr); library("tidyr"); library('purrr'); require(ranger)`,
			[]string{"dplyr", "purrr", "ranger", "tidyr"}},
		{"namespaced library", `base::library(glue)`, []string{"base", "glue"}},
		{"package argument", `library(package = "xgboost", quietly = TRUE)`, []string{"xgboost"}},
		{"requireNamespace", `if (!requireNamespace("carrier", quietly = TRUE)) stop(); loadNamespace('lubridate')`,
			[]string{"carrier", "lubridate"}},
		{"requireNamespace of a variable", `requireNamespace(pkg)`, nil},
		{"character.only variable", `for (p in pkgs) library(p, character.only = TRUE)`, nil},
		{"character.only literal", `library("zoo", character.only = TRUE)`, []string{"zoo"}},
		{"double and triple colon", `x <- stats::predict(m); y <- forecast:::fc_internal(x)`,
			[]string{"forecast", "stats"}},
		{"backticked", "`data.table`::fread('x.csv')", []string{"data.table"}},
		{"comments ignored", "# library(ggplot2)\n#* uses randomForest::randomForest\nx <- 1 # caret::train", nil},
		{"strings ignored", `msg <- "library(ggplot2) and xgboost::xgb"; cat('require(shiny)')`, nil},
		{"escaped quote in string", `s <- "a \" library(bad) \""; library(good)`, []string{"good"}},
		{"raw string ignored", `s <- r"(library(bad); keras::fit)"; t <- R"--[x::y]--"; library(ok)`, []string{"ok"}},
		{"method named library", `env$library(nope); obj@require(nope2)`, nil},
		{"library without call", `library <- function(x) x; f <- library`, nil},
		{"pipe and formula", `d |> dplyr::filter(x > 1) %>% tidyr::drop_na(); y ~ x`, []string{"dplyr", "tidyr"}},
		{"numbers with dots", `x <- .5 + 1e-3 + 0x1F + 2L; library(mgcv)`, []string{"mgcv"}},
		{"invalid names dropped", `library(x_y); requireNamespace("<PKG>")`, nil},
		{"suppressed", `suppressPackageStartupMessages(library(ranger))`, []string{"ranger"}},
		{"duplicates", `library(ranger); ranger::ranger(); require("ranger")`, []string{"ranger"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ScriptPackages([]byte(tt.src))
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ScriptPackages() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIsPlumberScript(t *testing.T) {
	seed, err := os.ReadFile("testdata/seed/plumber.R")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		file string
		src  string
		want bool
	}{
		{"seed", "plumber.R", string(seed), true},
		{"lower-case extension", "api.r", "#* @post /score\nfunction() 1", true},
		{"old-style annotation", "api.R", "#' @get /x\nfunction() 1", true},
		{"indented", "api.R", "  #*   @put /x\nfunction() 1", true},
		{"plain R script", "train.R", "# @get is mentioned in a comment\nx <- 1", false},
		{"annotation word inside a line", "api.R", "x <- 1 #* @get /x", false},
		{"not an R file", "plumber.py", "#* @get /live", false},
		{"filter only", "api.R", "#* @filter logger\nfunction(req) plumber::forward()", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsPlumberScript(tt.file, []byte(tt.src)); got != tt.want {
				t.Errorf("IsPlumberScript(%q) = %v, want %v", tt.file, got, tt.want)
			}
		})
	}
}

func FuzzScriptPackages(f *testing.F) {
	f.Add([]byte(`library(x); y::z(); r"(`))
	f.Add([]byte("`a`::b; '\\"))
	f.Fuzz(func(t *testing.T, src []byte) {
		for _, p := range ScriptPackages(src) {
			if !ValidPackageName(p) {
				t.Errorf("ScriptPackages returned invalid name %q", p)
			}
		}
	})
}
