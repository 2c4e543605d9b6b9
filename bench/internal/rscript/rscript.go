// Package rscript runs the R side of the benchmarks: it trains the iris
// example's crate, measures the in-R compute limit (the scoring handler
// called in a loop inside one R process: parse, predict, serialize, no
// HTTP), starts plumber processes exactly as plumbline's process driver
// does (the same launcher code), and reports R's and the packages' versions.
//
// It imports plumbline's internal/plumber (for the launcher) and
// bench/internal/proc.
package rscript

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/plumbline/plumbline/bench/internal/proc"
	"github.com/plumbline/plumbline/internal/plumber"
)

// Check reports why R cannot run the benchmarks, or nil.
func Check(rscript string) error {
	if _, err := exec.LookPath(rscript); err != nil {
		return fmt.Errorf("Rscript not found (%s): install R (Debian: apt-get install r-base-core)", rscript)
	}
	code := `for (p in c("plumber", "jsonlite", "randomForest")) if (!requireNamespace(p, quietly = TRUE)) { message("missing R package ", p); quit(status = 1) }`
	if out, err := exec.Command(rscript, "-e", code).CombinedOutput(); err != nil {
		return fmt.Errorf("R packages missing (Debian: apt-get install r-cran-plumber r-cran-jsonlite r-cran-randomforest): %s", strings.TrimSpace(string(out)))
	}
	return nil
}

// CheckPackages reports which of pkgs R lacks, with the Debian packages to
// install, or nil.
func CheckPackages(rscript string, pkgs ...string) error {
	code := `for (p in commandArgs(TRUE)) if (!requireNamespace(p, quietly = TRUE)) cat(p, "")`
	out, err := exec.Command(rscript, append([]string{"-e", code}, pkgs...)...).Output()
	if err != nil {
		return fmt.Errorf("cannot ask R for its packages: %w", err)
	}
	if missing := strings.Fields(string(out)); len(missing) > 0 {
		deb := make([]string, len(missing))
		for i, p := range missing {
			deb[i] = "r-cran-" + strings.ToLower(p)
		}
		return fmt.Errorf("R packages missing: %s (Debian: apt-get install %s)", strings.Join(missing, ", "), strings.Join(deb, " "))
	}
	return nil
}

// Versions returns R's version and those of the packages on the request
// path, e.g. {"R": "4.2.2", "plumber": "1.2.1", ...}.
func Versions(rscript string) map[string]string {
	code := `cat("R", paste(R.version$major, R.version$minor, sep = "."), "\n"); ` +
		`for (p in c("plumber", "httpuv", "jsonlite", "randomForest", "ranger")) cat(p, tryCatch(as.character(packageVersion(p)), error = function(e) "missing"), "\n")`
	out, err := exec.Command(rscript, "-e", code).Output()
	v := map[string]string{}
	if err != nil {
		return v
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			v[f[0]] = f[1]
		}
	}
	return v
}

// Train runs the example's train.R, writing crate.bin into outDir.
func Train(ctx context.Context, rscript, trainR, outDir string) error {
	out, err := exec.CommandContext(ctx, rscript, trainR, outDir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("train %s: %w\n%s", trainR, err, out)
	}
	return nil
}

// Limit is the in-R compute limit.
type Limit struct {
	Iterations int
	PerRequest time.Duration // mean time per handler call + serialization
	P50, P99   time.Duration
	RPS        float64 // 1 / PerRequest: what one R process could do without HTTP
}

// ComputeLimit loads the plumber file in one R process (as plumber does,
// with AZUREML_MODEL_DIR set), takes the handler of route, and calls it on
// body in a loop for about d after a short warm-up, serializing each answer
// with jsonlite as the unboxedJSON serializer does.
func ComputeLimit(ctx context.Context, rscript, plumberFile, modelDir, route, body string, d time.Duration) (Limit, error) {
	code := fmt.Sprintf(`
Sys.setenv(AZUREML_MODEL_DIR = %s)
pr <- plumber::pr(%s)
ep <- Filter(function(e) e$path == %s, pr$endpoints[[1]])[[1]]
f <- ep$getFunc()
req <- list(bodyRaw = charToRaw(%s))
res <- new.env(); res$status <- 200L
one <- function() jsonlite::toJSON(f(req = req, res = res), auto_unbox = TRUE)
for (i in 1:50) one()
budget <- %f
times <- numeric(1e6)
n <- 0L
start <- Sys.time()
repeat {
  t0 <- Sys.time(); one(); n <- n + 1L; times[n] <- as.numeric(Sys.time() - t0, units = "secs")
  if (n == length(times) || as.numeric(Sys.time() - start, units = "secs") >= budget) break
}
total <- as.numeric(Sys.time() - start, units = "secs")
times <- times[seq_len(n)]
q <- quantile(times, c(0.5, 0.99), type = 1, names = FALSE)
cat(sprintf("BENCH n=%%d total=%%.6f p50=%%.6f p99=%%.6f\n", length(times), total, q[1], q[2]))
`, rQuote(modelDir), rQuote(plumberFile), rQuote(route), rQuote(body), d.Seconds())
	out, err := exec.CommandContext(ctx, rscript, "-e", code).CombinedOutput()
	if err != nil {
		return Limit{}, fmt.Errorf("in-R loop: %w\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "BENCH ") {
			continue
		}
		kv := map[string]float64{}
		for _, f := range strings.Fields(line)[1:] {
			k, v, _ := strings.Cut(f, "=")
			kv[k], _ = strconv.ParseFloat(v, 64)
		}
		l := Limit{Iterations: int(kv["n"])}
		if l.Iterations == 0 || kv["total"] == 0 {
			break
		}
		secs := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
		l.PerRequest = secs(kv["total"] / kv["n"])
		l.P50, l.P99 = secs(kv["p50"]), secs(kv["p99"])
		l.RPS = kv["n"] / kv["total"]
		return l, nil
	}
	return Limit{}, fmt.Errorf("in-R loop printed no result:\n%s", out)
}

// Plumber is a plumber process started by the harness.
type Plumber struct {
	Proc *proc.Proc
	Addr string // 127.0.0.1:port
}

// StartPlumber runs codeDir/entry under plumber with plumbline's own
// launcher (so it is the same R code path as a plumbline instance) on a free
// port, and waits until readyPath answers 200.
func StartPlumber(ctx context.Context, g *proc.Group, name, rscript, codeDir, entry, modelDir, readyPath string) (*Plumber, error) {
	port, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(rscript, "-e", plumber.Launcher("127.0.0.1"))
	cmd.Dir = codeDir
	cmd.Env = append(os.Environ(),
		"AML_APP_ROOT="+codeDir,
		"AZUREML_ENTRY_SCRIPT="+entry,
		"AZUREML_MODEL_DIR="+modelDir,
		"PORT="+strconv.Itoa(port),
	)
	p, err := g.Start(name, cmd, proc.Options{Grace: 3 * time.Second})
	if err != nil {
		return nil, err
	}
	pl := &Plumber{Proc: p, Addr: "127.0.0.1:" + strconv.Itoa(port)}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}, Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := client.Get("http://" + pl.Addr + readyPath)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return pl, nil
			}
		}
		select {
		case <-p.Exited():
			return nil, proc.ExitError(p)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s did not answer %s within 60 s: %v\n%s", name, readyPath, err, p.LogTail(2000))
		}
	}
}

// rQuote quotes s as an R string literal.
func rQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
