package resolve

import (
	"strings"
	"testing"
	"time"
)

func TestTemplateHashVersioned(t *testing.T) {
	p := &Plan{Runtime: "plumber", CodeDigest: "sha256:aa", EntryScript: "plumber.R", Env: map[string]string{"A": "1"}}
	h := p.TemplateHash()
	if !strings.HasPrefix(h, "t1:") {
		t.Fatalf("TemplateHash() = %q, want the version prefix t1:", h)
	}
	if !p.TemplateMatches(h) {
		t.Errorf("TemplateMatches(own hash %q) = false", h)
	}
	// Settings outside the template never change the hash.
	q := *p
	q.InstanceCount, q.RequestTimeout, q.MaxConcurrentPerInstance = 3, time.Minute, 4
	if !q.TemplateMatches(h) {
		t.Errorf("a scale or request-settings change changed the template")
	}
	// What runs does.
	q.Env = map[string]string{"A": "2"}
	if q.TemplateMatches(h) {
		t.Errorf("an environment change kept the template %q", h)
	}
	for _, bad := range []string{"", strings.TrimPrefix(h, "t1:"), "t9:" + strings.TrimPrefix(h, "t1:")} {
		if p.TemplateMatches(bad) {
			t.Errorf("TemplateMatches(%q) = true, want unversioned and unknown versions never to match", bad)
		}
	}
}
