package server

import "testing"

func TestErrorDetailDefault(t *testing.T) {
	tests := []struct {
		listen, flag string
		want         bool
	}{
		{"127.0.0.1:8443", "", true},
		{"127.0.0.1:8443", "auto", true},
		{"[::1]:8443", "auto", true},
		{"localhost:8443", "auto", true},
		{"0.0.0.0:443", "auto", false},
		{":443", "", false},
		{"10.1.2.3:443", "auto", false},
		{"0.0.0.0:443", "on", true},
		{"127.0.0.1:8443", "off", false},
	}
	for _, tt := range tests {
		if got := errorDetail(Config{Listen: tt.listen, ErrorDetail: tt.flag}); got != tt.want {
			t.Errorf("errorDetail(listen %s, --error-detail %q) = %v, want %v", tt.listen, tt.flag, got, tt.want)
		}
	}
}
