package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/store/postgres/pgtest"
)

// TestSafeRolloutAcrossReplicas: two control replicas and two gateway
// replicas share PostgreSQL. The comparison is the sum of both gateways'
// pairs, read through either control replica; a rollout step whose
// minimum of requests neither gateway reaches alone passes on their sum,
// judged by the leader.
func TestSafeRolloutAcrossReplicas(t *testing.T) {
	pg := pgtest.URL(t)
	dd := newDataDir(t)
	ctlA := startReplica(t, dd, pg, "control", "control-a")
	ctlB := startReplica(t, dd, pg, "control", "control-b")
	gws := []*replica{startReplica(t, dd, pg, "gateway", "gateway-1"), startReplica(t, dd, pg, "gateway", "gateway-2")}
	dir := t.TempDir()
	cli := func(r *replica, args ...string) result { t.Helper(); return replicaCLI(t, dd, r, dir, args...) }

	const ep = "safe-replicas"
	cli(ctlA, "model", "create", "--name", "cls", "--version", "1", "--path", classifierModel(t, 0))
	cli(ctlA, "model", "create", "--name", "cls", "--version", "2", "--path", classifierModel(t, 10))
	epFile := filepath.Join(dir, "endpoint.yml")
	if err := os.WriteFile(epFile, []byte("name: "+ep+"\nauth_mode: key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cli(ctlB, "online-endpoint", "create", "-f", epFile)
	cli(ctlA, "online-deployment", "create", "-f", classifierDeployment(t, dir, "blue", ep, "azureml:cls:1", nil, ""), "--all-traffic")
	cli(ctlB, "online-deployment", "create", "-f", classifierDeployment(t, dir, "green", ep, "azureml:cls:2", nil, ""))
	var keys keysView
	decodeJSON(t, cli(ctlA, "online-endpoint", "get-credentials", "--name", ep, "-o", "json"), &keys)
	c := (&server{dataDir: dd}).httpClient(t)
	uri := func(g *replica) string { return g.url + "/endpoints/" + ep + "/score" }

	// scoreThrough sends n requests through g and counts the answers by
	// the deployment that gave them.
	scoreThrough := func(g *replica, n, from int) map[string]int {
		t.Helper()
		by := map[string]int{}
		for i := range n {
			r, err := tryScore(c, uri(g), keys.PrimaryKey, "", fmt.Sprintf(`{"data": [[%d], [%d]]}`, from+2*i, from+2*i+1))
			if err != nil || r.status != http.StatusOK {
				t.Fatalf("through %s: %d %v", g.name, r.status, err)
			}
			by[r.deployment]++
		}
		return by
	}
	// pairsOf is what one gateway's /metrics says it compared.
	pairsRe := regexp.MustCompile(`plumbline_shadow_pairs_total\{endpoint="` + ep + `",live="blue",result="(agree|disagree)",shadow="green"\} ([0-9.e+]+)`)
	pairsOf := func(g *replica) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, g.url+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+readAdminToken(t, dd))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s /metrics: %v", g.name, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		n := 0
		for _, m := range pairsRe.FindAllStringSubmatch(string(b), -1) {
			v, _ := strconv.ParseFloat(m[2], 64)
			n += int(v)
		}
		return n
	}

	// The mirror: each gateway compares its own pairs; the comparison is
	// their sum.
	cli(ctlA, "online-endpoint", "update", "--name", ep, "--mirror-traffic", "green=50")
	time.Sleep(1500 * time.Millisecond) // every gateway follows a change within a second
	scoreThrough(gws[0], 150, 0)
	scoreThrough(gws[1], 150, 1000)
	var mine [2]int
	waitFor(t, 20*time.Second, "the comparison to add up both gateways' pairs", func() (bool, string) {
		mine = [2]int{pairsOf(gws[0]), pairsOf(gws[1])}
		var cv struct {
			Comparisons []struct {
				Kind      string  `json:"kind"`
				Pairs     int     `json:"pairs"`
				Agreement float64 `json:"agreement"`
			} `json:"comparisons"`
		}
		decodeJSON(t, cli(ctlB, "online-endpoint", "compare", "--name", ep, "-o", "json"), &cv)
		got := 0
		for _, p := range cv.Comparisons {
			if p.Kind == "mirror" {
				got += p.Pairs
			}
		}
		return mine[0] > 0 && mine[1] > 0 && got == mine[0]+mine[1], fmt.Sprintf("compare: %d pairs; gateway-1 compared %d, gateway-2 %d", got, mine[0], mine[1])
	})
	t.Logf("the comparison adds up gateway-1's %d pairs and gateway-2's %d", mine[0], mine[1])
	cli(ctlA, "online-endpoint", "update", "--name", ep, "--mirror-traffic", "green=0")

	// A rollout straight to 100 % needing 40 requests: each gateway sends
	// green fewer than that, and the step passes on their sum.
	cli(ctlB, "online-deployment", "rollout", "--name", "green", "--endpoint-name", ep, "--steps", "100",
		"--min-requests", "40", "--bake-time", "0", "--max-latency-ratio", "0")
	time.Sleep(1500 * time.Millisecond)
	green := [2]int{}
	for round := 0; ; round++ {
		var ro rolloutView
		decodeJSON(t, cli(ctlA, "online-deployment", "rollout", "status", "--name", "green", "--endpoint-name", ep, "-o", "json"), &ro)
		if ro.State == "Succeeded" {
			t.Logf("rollout: %s (%s); green answered %d requests through gateway-1 and %d through gateway-2 before", ro.State, ro.Reason, green[0], green[1])
			break
		}
		if ro.State != "Running" || round > 40 {
			t.Fatalf("rollout %s (%s) after green answered %d + %d requests", ro.State, ro.Reason, green[0], green[1])
		}
		// Green answers every request it is given; neither gateway alone
		// may have given it 40 before the step passed.
		if green[0] >= 40 || green[1] >= 40 {
			t.Fatalf("green answered %d requests through gateway-1 and %d through gateway-2, and the step still runs (%s)", green[0], green[1], ro.Reason)
		}
		green[0] += scoreThrough(gws[0], 5, 3000+10*round)["green"]
		green[1] += scoreThrough(gws[1], 5, 5000+10*round)["green"]
		time.Sleep(400 * time.Millisecond) // figures reach the store every 250 ms
	}
	if green[0]+green[1] < 40 {
		t.Errorf("the step passed after %d requests to green, want at least 40", green[0]+green[1])
	}
}
