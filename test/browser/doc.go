// Package browser tests plumbline studio, the web UI under /studio/, in a
// real headless Chromium (Debian's /usr/bin/chromium, driven with
// chromedp) against a real `plumbline serve` running the R iris example:
// sign in with the admin token, look at the endpoints, test the endpoint
// with the sample, shift traffic 90/10 and check it with the CLI, follow
// logs, watch metrics, browse models, sign out — with no error in the
// browser console.
//
// The test saves a screenshot of every page. With
// PLUMBLINE_UPDATE_SCREENSHOTS=1 they go to docs/screenshots/ (the pictures
// the documentation shows); otherwise to a temporary directory.
//
// The package has no API and imports nothing from plumbline: the binary is
// its only way in. PLUMBLINE_BIN names the binary (`make test` sets it);
// otherwise TestMain builds ./cmd/plumbline. The test skips with -short,
// and when Chromium, Rscript or the R packages the example needs are
// missing (scripts/install-deps.sh and scripts/install-test-deps.sh install
// them).
package browser
