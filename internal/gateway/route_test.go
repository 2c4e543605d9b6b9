package gateway

import (
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		path     string
		wantName string
		wantAct  action
		wantOK   bool
	}{
		{"/endpoints/ep/score", "ep", actionScore, true},
		{"/endpoints/My-Ep/score", "my-ep", actionScore, true},
		{"/endpoints/ep/swagger.json", "ep", actionOpenAPI, true},
		{"/endpoints/ep/score/", "", 0, false},
		{"/endpoints/ep", "", 0, false},
		{"/endpoints//score", "", 0, false},
		{"/endpoints/e.p/score", "", 0, false},
		{"/endpoints/ep/x/score", "", 0, false},
		{"/score", "", 0, false},
		{"", "", 0, false},
	}
	for _, tt := range tests {
		name, act, ok := parsePath(tt.path)
		if name != tt.wantName || act != tt.wantAct || ok != tt.wantOK {
			t.Errorf("parsePath(%q): got %q, %v, %v, want %q, %v, %v", tt.path, name, act, ok, tt.wantName, tt.wantAct, tt.wantOK)
		}
	}
}

func TestParseHost(t *testing.T) {
	domains := []string{"localhost", "ml.example.com"}
	tests := []struct {
		host   string
		want   string
		wantOK bool
	}{
		{"ep.localhost", "ep", true},
		{"ep.localhost:8443", "ep", true},
		{"EP.LocalHost", "ep", true},
		{"ep.localhost.", "ep", true},
		{"ep.ml.example.com", "ep", true},
		{"a.b.localhost", "", false},
		{"localhost", "", false},
		{".localhost", "", false},
		{"eplocalhost", "", false},
		{"ep.example.com", "", false},
		{"[::1]:443", "", false},
		{"127.0.0.1:8443", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := parseHost(tt.host, domains)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("parseHost(%q): got %q, %v, want %q, %v", tt.host, got, ok, tt.want, tt.wantOK)
		}
	}
}

func FuzzParseURI(f *testing.F) {
	for _, s := range []string{"/endpoints/ep/score", "/endpoints/ep/swagger.json", "/endpoints//score", "/score", "ep.localhost:80", "[::1]:1", "a.b.c", "É.localhost"} {
		f.Add(s, s)
	}
	domains := []string{"localhost", "ml.example.com"}
	f.Fuzz(func(t *testing.T, path, host string) {
		if name, act, ok := parsePath(path); ok {
			if !validLabel(name) || name != strings.ToLower(name) || (act != actionScore && act != actionOpenAPI) {
				t.Fatalf("parsePath(%q) = %q, %v", path, name, act)
			}
			if !strings.HasPrefix(path, pathPrefix+name) && !strings.EqualFold(path[:len(pathPrefix)+len(name)], pathPrefix+name) {
				t.Fatalf("parsePath(%q) = %q: not the path's segment", path, name)
			}
		}
		if name, ok := parseHost(host, domains); ok {
			if !validLabel(name) || name != strings.ToLower(name) {
				t.Fatalf("parseHost(%q) = %q", host, name)
			}
			if !strings.Contains(strings.ToLower(host), name+".") {
				t.Fatalf("parseHost(%q) = %q: not a label of the host", host, name)
			}
		}
	})
}
