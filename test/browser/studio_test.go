package browser

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const (
	endpointName = "r-endpoint-iris"
	// twoRows is a request the studio must remember for the endpoint.
	twoRows = `{"sepal_length": [6.7, 5.1], "sepal_width": [3.3, 3.5], "petal_length": [5.7, 1.4], "petal_width": [2.5, 0.2]}`
)

// TestStudio drives the studio the way a user does, against the R iris
// example deployed twice (blue and green), one server and one R instance
// per deployment.
func TestStudio(t *testing.T) {
	requireRunnable(t)
	started := time.Now()

	// Deploy the example with the CLI, as the README does.
	dd := newDataDir(t)
	srv := startServer(t, dd)
	ex := t.TempDir()
	copyDir(t, filepath.Join(repoRoot, "examples", "r-iris"), ex)
	runIn(t, ex, "Rscript", "train.R")
	srv.cliIn(t, ex, "model", "create", "--name", "iris-crate", "--path", "models")
	srv.cliIn(t, ex, "online-endpoint", "create", "-f", "endpoint.yml", "--set", "auth_mode=key")
	srv.cliIn(t, ex, "online-deployment", "create", "-f", "deployment.yml", "--all-traffic")
	srv.cliIn(t, ex, "online-deployment", "create", "-f", "green-deployment.yml")
	// An autoscaled third deployment that scales to zero (plumbline's
	// extension) for the Metrics tab's autoscaling part.
	auto, err := os.ReadFile(filepath.Join(ex, "green-deployment.yml"))
	if err != nil {
		t.Fatal(err)
	}
	autoDoc := strings.Replace(strings.Replace(string(auto), "name: green", "name: auto", 1), "instance_count: 1",
		"scale_settings: {type: target_utilization, min_instances: 0, max_instances: 2}\nplumbline:\n  autoscale: {scale_to_zero_after: 2}", 1)
	if !strings.Contains(autoDoc, "name: auto") || !strings.Contains(autoDoc, "min_instances: 0") {
		t.Fatalf("green-deployment.yml changed shape: cannot derive the autoscaled deployment from it:\n%s", auto)
	}
	if err := os.WriteFile(filepath.Join(ex, "auto-deployment.yml"), []byte(autoDoc), 0o644); err != nil {
		t.Fatal(err)
	}
	srv.cliIn(t, ex, "online-deployment", "create", "-f", "auto-deployment.yml")
	t.Logf("example deployed in %s", time.Since(started).Round(100*time.Millisecond))

	shots := screenshotDir(t)
	b := newBrowser(t, shots)
	studio := srv.state.URL + "/studio/"

	// Sign in with the admin token.
	b.do("open the studio", chromedp.Navigate(studio))
	b.do("see the sign-in form", chromedp.WaitVisible(chromedp.CSS("#token")))
	b.waitText("main", "admin.token")
	b.screenshot("studio-login")
	b.typeInto("#token", srv.adminToken(t))
	b.click(`main form button[type="submit"]`)

	// Endpoints: the endpoint with its auth mode, state and traffic.
	epLink := `a[href="#/endpoints/` + endpointName + `"]`
	b.do("see the endpoint in the list", chromedp.WaitVisible(chromedp.CSS(epLink)))
	row := eval[string](b, `document.querySelector('tbody tr').innerText`)
	for _, want := range []string{endpointName, "Succeeded", "key", "blue", "100%", "/endpoints/" + endpointName + "/score"} {
		if !strings.Contains(row, want) {
			b.fatalf("the endpoints table row does not show %q:\n%s", want, row)
		}
	}
	b.screenshot("studio-endpoints")

	// The same page at phone width: no sideways scrolling.
	b.do("narrow the viewport to 375 px",
		chromedp.EmulateViewport(375, 812, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	b.waitJS("the page fits 375 px", `document.documentElement.scrollWidth <= window.innerWidth`)
	b.screenshot("studio-endpoints-375")
	b.do("widen the viewport to 1280×800", chromedp.EmulateViewport(1280, 800))

	// Endpoint page: both deployments with their instances, and the
	// traffic editor.
	b.click(epLink)
	b.do("see the traffic editor", chromedp.WaitVisible(chromedp.CSS("#apply-traffic")))
	b.waitText(".dep-grid", "blue-0")
	b.waitText(".dep-grid", "green-0")
	b.waitText(".dep-grid", "iris-crate:1")

	// A split that does not total 100 is refused in the page.
	b.typeInto("#traffic-blue", "90")
	b.typeInto("#traffic-green", "5")
	b.waitText(".teditor .sum", "95%")
	b.click("#apply-traffic")
	b.waitText(".teditor [role=status]", "must total 100%")
	if got := endpointTraffic(t, srv); !maps.Equal(got, map[string]int{"blue": 100, "green": 0, "auto": 0}) {
		b.fatalf("after a refused split the traffic is %v, want blue 100, green 0", got)
	}
	// Mirroring 20% to green (no live traffic there) is applied live.
	b.typeInto("#traffic-blue", "100")
	b.typeInto("#traffic-green", "0")
	b.setValue("#mirror-deployment", "green")
	b.typeInto("#mirror-percent", "20")
	b.click("#apply-traffic")
	b.waitText(".teditor [role=status]", "Applied: blue 100%, mirror green 20%")
	if got := endpointMirror(t, srv); !maps.Equal(got, map[string]int{"green": 20}) {
		b.fatalf("online-endpoint show: mirror_traffic %v, want green 20", got)
	}
	// 90/10 without mirroring is applied live, and the CLI sees it.
	b.setValue("#mirror-deployment", "")
	b.typeInto("#traffic-blue", "90")
	b.typeInto("#traffic-green", "10")
	b.waitText(".teditor .sum", "100%")
	b.click("#apply-traffic")
	b.waitText(".teditor [role=status]", "Applied: blue 90% · green 10%")
	if got := endpointTraffic(t, srv); !maps.Equal(got, map[string]int{"blue": 90, "green": 10, "auto": 0}) {
		b.fatalf("online-endpoint show: traffic %v, want blue 90, green 10", got)
	}
	if got := endpointMirror(t, srv); len(got) != 0 {
		b.fatalf("online-endpoint show: mirror_traffic %v, want none", got)
	}
	b.waitText(".page-head .tlegend", "green 10%")
	b.waitText(".dep-grid", "10% of live traffic")
	if got := eval[string](b, `document.querySelector('#traffic-blue').value + "/" + document.querySelector('#traffic-green').value`); got != "90/10" {
		b.fatalf("after applying, the editor shows %s, want 90/10", got)
	}
	b.screenshot("studio-endpoint")

	// Test tab: prefilled with the iris sample; invalid JSON is refused
	// before sending; the sample gets a prediction.
	b.click(`nav.tabs a[href$="/test"]`)
	b.do("see the Test tab", chromedp.WaitVisible(chromedp.CSS("#test-send")))
	var prefilled map[string][]float64
	if err := json.Unmarshal([]byte(eval[string](b, `document.querySelector('#test-input').value`)), &prefilled); err != nil ||
		len(prefilled) != 4 || prefilled["petal_width"][0] != 2.5 {
		b.fatalf("the request box is not prefilled with the iris sample: %v %v", prefilled, err)
	}
	b.setValue("#test-input", `{"sepal_length": [6.7],`)
	b.click("#test-send")
	b.waitText("#test-input-error", "not valid JSON")
	if eval[bool](b, `document.querySelector('#test-status') !== null`) {
		b.fatalf("invalid JSON was sent")
	}
	b.setValue("#test-input", twoRows)
	b.click("#test-send")
	b.waitText("#test-status", "200")
	b.waitText("#test-response", "virginica")
	b.waitText("#test-response", "setosa")
	// The last request comes back after a reload; a chosen deployment is
	// sent as azureml-model-deployment.
	b.do("reload the Test tab", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#test-send")))
	if got := eval[string](b, `document.querySelector('#test-input').value`); got != twoRows {
		b.fatalf("after a reload the request box holds %q, want the last request %q", got, twoRows)
	}
	b.click("#test-format")
	if got := eval[string](b, `document.querySelector('#test-input').value`); !strings.Contains(got, "\n  \"sepal_width\": [3.3, 3.5],\n") {
		b.fatalf("Format JSON wrote %q", got)
	}
	b.setValue("#test-deployment", "green")
	b.click("#test-send")
	b.waitText("#test-result", "answered by green")
	b.waitText("#test-response", "virginica")
	b.waitText("#test-result", "x-request-id")
	b.screenshot("studio-test")

	// Logs tab: the instance's console, then followed live until Stop.
	b.click(`nav.tabs a[href$="/logs"]`)
	b.waitText("#logs-output", "plumber")
	b.click("#logs-follow")
	b.waitText(".follow-state", "Following")
	b.screenshot("studio-logs")
	b.click("#logs-stop")
	b.waitText(".follow-state", "Stopped")

	// Metrics tab: live charts from /metrics while requests flow.
	key := strings.TrimSpace(srv.cliIn(t, "", "online-endpoint", "get-credentials", "--name", endpointName, "--query", "primaryKey", "-o", "tsv"))
	loadCtx, stopLoad := context.WithCancel(context.Background())
	type loadResult struct {
		ok  int
		err error
	}
	loadDone := make(chan loadResult, 1)
	go func() {
		ok, err := srv.scoreLoop(loadCtx, srv.httpClient(t), endpointName, key, twoRows, 120*time.Millisecond)
		loadDone <- loadResult{ok, err}
	}()
	b.click(`nav.tabs a[href$="/metrics"]`)
	// Five points a line: ten seconds of scrapes.
	b.waitJS("the request-rate and latency charts draw lines",
		`(document.querySelector('#chart-rps polyline')?.getAttribute('points') ?? '').split(' ').length >= 5 &&
		 document.querySelector('#chart-p99 polyline') !== null`)
	b.waitText("#metrics-codes", "200 ×")
	b.screenshot("studio-metrics")

	// Autoscaling: the deployment that scaled to zero comes back for one
	// request; the page shows the decisions, the cold start and the
	// instances, desired and actual.
	b.waitText("#scale-decisions", "scaled 1 → 0: no request for")
	b.waitText("#scale-status", "ready 0 of 0")
	c := srv.httpClient(t)
	req, _ := http.NewRequest(http.MethodPost, srv.state.ScoringURL+"/endpoints/"+endpointName+"/score", strings.NewReader(twoRows))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("azureml-model-deployment", "auto")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b.fatalf("a request to the deployment at zero instances: %d %s, want 200 after a cold start", res.StatusCode, body)
	}
	b.waitText("#cold-starts", "1 cold start")
	b.waitText("#scale-decisions", "scale from zero")
	b.waitText("#scale-status", "ready 1 of 1")
	b.waitJS("the instances chart draws desired and actual",
		`document.querySelectorAll('#chart-instances polyline').length >= 2 &&
		 document.querySelector('#chart-instances polyline[stroke-dasharray]') !== null`)
	b.screenshotOf("studio-autoscaling", "#autoscaling")
	stopLoad()
	if r := <-loadDone; r.ok == 0 || r.err != nil {
		t.Errorf("scoring while the metrics page was open: %d answered 200, first problem: %v", r.ok, r.err)
	}

	// The deployment cards show the gateway's recent figures, as show does.
	b.click(`nav.tabs a[href$="/details"]`)
	b.waitText(".dep-grid .health", "requests failed (0.0%) · p50 ")

	// Keys tab: the calls up prints, from the same server-side writer.
	b.click(`nav.tabs a[href$="/consume"]`)
	var snippets struct{ Shell, Curl, R string }
	srv.apiJSON(t, "/api/v1/endpoints/"+endpointName+"/snippets", &snippets)
	b.waitText("main", snippets.Shell)
	if got := eval[string](b, `[...document.querySelectorAll('pre.snippet')].map((p) => p.textContent).join("\n\n")`); got != snippets.Shell+"\n\n"+snippets.Curl+"\n\n"+snippets.R {
		b.fatalf("the Keys tab shows\n%s\nwant the snippets plumbline up prints:\n%s\n\n%s\n\n%s", got, snippets.Shell, snippets.Curl, snippets.R)
	}

	// Rollout tab: a rollout of green with a shadow step (it waits there:
	// 1000 requests are far off), its gates and figures, the comparison of
	// green's answers with blue's, then Pause and Abort from the page.
	srv.cliIn(t, "", "online-deployment", "rollout", "--name", "green", "--endpoint-name", endpointName,
		"--shadow", "50", "--steps", "50,100", "--min-requests", "1000", "--bake-time", "0")
	loadCtx, stopLoad = context.WithCancel(context.Background())
	go func() {
		ok, err := srv.scoreLoop(loadCtx, srv.httpClient(t), endpointName, key, twoRows, 100*time.Millisecond)
		loadDone <- loadResult{ok, err}
	}()
	b.click(`nav.tabs a[href$="/rollout"]`)
	b.waitText("#rollout", "Running")
	b.waitText("#rollout .steps", "shadow 50 %")
	b.waitText("#rollout-gates", "Mirrored requests")
	b.waitText("#rollout-waiting", "more requests")
	b.waitText("#comparison", "Mirror: blue → green")
	b.waitJS("mirrored pairs compared", `/of [1-9][0-9]* predictions/.test(document.querySelector('#comparison .agreement')?.innerText ?? '')`)
	b.waitText("#comparison", "Latency p50 / p99")
	b.waitText("#traffic-history", "rollout of green started")
	b.screenshot("studio-rollout")
	stopLoad()
	if r := <-loadDone; r.ok == 0 || r.err != nil {
		t.Errorf("scoring during the shadow step: %d answered 200, first problem: %v", r.ok, r.err)
	}
	b.click("#rollout-pause")
	b.waitText("#rollout", "Paused")
	var ro struct{ State string }
	srv.cliJSON(t, &ro, "online-deployment", "rollout", "status", "--name", "green", "--endpoint-name", endpointName)
	if ro.State != "Paused" {
		b.fatalf("after Pause the CLI shows the rollout %s", ro.State)
	}
	eval[bool](b, `(window.confirm = () => true, true)`)
	b.click("#rollout-abort")
	b.waitText("#rollout", "Aborted")
	b.waitText("#rollout-reason", "aborted by a user at step 1 of 3 (shadow 50 %)")
	if got := endpointTraffic(t, srv); !maps.Equal(got, map[string]int{"blue": 90, "green": 10, "auto": 0}) {
		b.fatalf("after Abort the traffic is %v, want the split it started from, blue 90, green 10", got)
	}
	b.waitText(".page-head .tlegend", "green 10%")

	// Models: the version, its file and who uses it.
	b.click(`nav.mainnav a[data-nav="models"]`)
	b.waitText("#model-detail", "models/crate.bin")
	b.waitText("#model-detail", endpointName)
	b.waitText("#model-detail", "green")
	b.screenshot("studio-models")

	// The page's own arithmetic: metrics parsing, quantiles, traffic rules.
	selfcheck, err := os.ReadFile(filepath.Join("testdata", "selfcheck.js"))
	if err != nil {
		t.Fatal(err)
	}
	if fails := evalAsync[string](b, string(selfcheck)); fails != "" {
		t.Errorf("the studio's JavaScript computes wrong results:\n%s", fails)
	}

	// Sign out: back to the form, and the token is gone from the tab.
	b.click("#sign-out")
	b.do("see the sign-in form again", chromedp.WaitVisible(chromedp.CSS("#token")))
	b.waitText("main", "Signed out")
	if eval[bool](b, `sessionStorage.getItem('plumbline.studio.token') !== null`) {
		b.fatalf("the admin token is still in sessionStorage after signing out")
	}

	if ps := b.consoleProblems(); len(ps) > 0 {
		t.Errorf("the browser console reported %d problem(s):\n%s", len(ps), onlyProblems(ps))
	}
	t.Logf("studio test took %s; screenshots in %s", time.Since(started).Round(100*time.Millisecond), shots)
}

// shownEndpoint is the part of `online-endpoint show -o json` the test reads.
type shownEndpoint struct {
	Traffic       map[string]int `json:"traffic"`
	MirrorTraffic map[string]int `json:"mirror_traffic"`
}

// endpointTraffic is the endpoint's live traffic as the CLI shows it.
func endpointTraffic(t *testing.T, srv *server) map[string]int {
	t.Helper()
	var ep shownEndpoint
	srv.cliJSON(t, &ep, "online-endpoint", "show", "--name", endpointName)
	return ep.Traffic
}

// endpointMirror is the endpoint's mirror traffic as the CLI shows it.
func endpointMirror(t *testing.T, srv *server) map[string]int {
	t.Helper()
	var ep shownEndpoint
	srv.cliJSON(t, &ep, "online-endpoint", "show", "--name", endpointName)
	return ep.MirrorTraffic
}
