package apiserver

import (
	"strings"
	"testing"
)

// TestOpenAPIMatchesRouteTable: every served route is documented, with a
// summary, and the document lists nothing that is not served.
func TestOpenAPIMatchesRouteTable(t *testing.T) {
	s := New(Config{AdminToken: "x"})
	served := map[string]bool{}
	for _, rt := range s.table() {
		key := rt.method + " " + rt.path
		served[key] = true
		if d, ok := docs[key]; !ok || d.summary == "" || d.status == 0 {
			t.Errorf("route %s has no entry (summary, status) in docs", key)
		}
	}
	for key := range docs {
		if !served[key] {
			t.Errorf("docs describes %s, which is not served", key)
		}
	}
	doc := s.openAPIDoc()
	n := 0
	for path, ops := range doc["paths"].(map[string]map[string]any) {
		for method := range ops {
			n++
			if !served[strings.ToUpper(method)+" "+strings.TrimPrefix(path, prefix)] {
				t.Errorf("the OpenAPI document lists %s %s, which is not served", method, path)
			}
		}
	}
	if n != len(served) {
		t.Errorf("the OpenAPI document has %d operations, the server serves %d routes", n, len(served))
	}
}
