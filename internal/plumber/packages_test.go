package plumber

import (
	"context"
	"errors"
	"os/exec"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestMissingPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: not starting R")
	}
	if _, err := exec.LookPath("Rscript"); err != nil {
		t.Skip("Rscript is not installed: cannot ask R which packages it lacks")
	}
	// jsonlite is a plumber dependency, so an R that runs plumber has it;
	// JSONlite is how Debian's lower-cased r-cran-jsonlite could be spelt
	// elsewhere and must match it; the third name is nobody's package; stats
	// is a base package R is not asked about. One Rscript call answers all.
	got, err := MissingPackages(context.Background(), "", []string{"jsonlite", "JSONlite", "plumblineNoSuchPkg", "stats", "jsonlite"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"plumblineNoSuchPkg"}, got); diff != "" {
		t.Errorf("MissingPackages() mismatch (-want +got):\n%s", diff)
	}
}

func TestMissingPackagesWithoutR(t *testing.T) {
	_, err := MissingPackages(context.Background(), "/nonexistent/Rscript", []string{"dplyr"})
	if !errors.Is(err, ErrNoR) {
		t.Errorf("MissingPackages() with no Rscript: got %v, want an error wrapping ErrNoR", err)
	}
}

func TestMissingPackagesNoQuestion(t *testing.T) {
	// Only base packages: nothing to ask, so no R is needed.
	got, err := MissingPackages(context.Background(), "/nonexistent/Rscript", []string{"stats", "utils", "grDevices"})
	if err != nil || len(got) != 0 {
		t.Errorf("MissingPackages(base packages) = %v, %v; want none, nil", got, err)
	}
}

func TestMissingPackagesRejectsBadNames(t *testing.T) {
	_, err := MissingPackages(context.Background(), "/nonexistent/Rscript", []string{"ok", "x'); system('rm -rf /"})
	if err == nil || errors.Is(err, ErrNoR) {
		t.Errorf("MissingPackages(injection) = %v, want an invalid-name error before R is looked for", err)
	}
}

func TestIsBasePackage(t *testing.T) {
	for _, p := range []string{"base", "stats", "utils", "methods", "graphics", "grDevices", "datasets",
		"tools", "parallel", "grid", "splines", "stats4", "tcltk", "compiler"} {
		if !IsBasePackage(p) {
			t.Errorf("IsBasePackage(%q) = false, want true", p)
		}
	}
	for _, p := range []string{"dplyr", "MASS", "Stats", ""} {
		if IsBasePackage(p) {
			t.Errorf("IsBasePackage(%q) = true, want false", p)
		}
	}
}

// TestInstallHint asks this machine's apt (Debian's archive) which
// packages exist: randomForest is r-cran-randomforest, xgboost is not
// packaged for Debian 12, and the hint must not invent r-cran-xgboost.
func TestInstallHint(t *testing.T) {
	if _, have := DebianPackages(context.Background(), []string{"r-base-core"}); !have {
		t.Skip("apt-cache with package lists is not available (Debian: apt-get update)")
	}
	const container = "or run the deployment in a container that has them: plumbline serve --driver docker builds its environment's Dockerfile"
	tests := []struct {
		name    string
		missing []string
		want    string
	}{
		{"none", nil, ""},
		{"packaged", []string{"randomForest", "jsonlite"},
			"apt-get install -y r-cran-randomforest r-cran-jsonlite\nor, in R: install.packages(c(\"randomForest\", \"jsonlite\"))\n" + container},
		{"mixed", []string{"randomForest", "xgboost"},
			"apt-get install -y r-cran-randomforest\nand, in R (not packaged for Debian): install.packages(\"xgboost\")\n" + container},
		{"not packaged", []string{"xgboost", "notapkg123"},
			"in R (not packaged for Debian): install.packages(c(\"xgboost\", \"notapkg123\"))\n" + container},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, InstallHint(tt.missing), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("InstallHint() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDockerfileExtras(t *testing.T) {
	df := []byte("FROM rstudio/plumber\nRUN R -e \"install.packages(c('carrier', 'randomForest', 'tibble'))\"\n")
	script := []byte("library(tibble)\n#* @post /score\nfunction() 1\n")
	if got := DockerfileExtras(df, script); !cmp.Equal(got, []string{"randomForest"}) {
		t.Errorf("DockerfileExtras = %v, want [randomForest] (carrier is not needed to call a crate; tibble is named)", got)
	}
}
