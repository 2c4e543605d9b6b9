package nginx

import (
	"strings"
	"testing"
)

func TestConfig(t *testing.T) {
	conf := Config("/tmp/x", []*Site{
		{Name: "ka", Upstreams: []string{"127.0.0.1:1"}, Keepalive: 256, Port: 8001},
		{Name: "plain", Upstreams: []string{"127.0.0.1:2", "127.0.0.1:3"}, Port: 8002},
	})
	ka := conf[strings.Index(conf, "upstream ka"):strings.Index(conf, "upstream plain")]
	plain := conf[strings.Index(conf, "upstream plain"):]
	// performance.md §2: without these three, nginx is not given a fair chance.
	for _, want := range []string{"keepalive 256;", "proxy_http_version 1.1;", `proxy_set_header Connection "";`, "listen 127.0.0.1:8001;"} {
		if !strings.Contains(ka, want) {
			t.Errorf("keep-alive site lacks %q:\n%s", want, ka)
		}
	}
	for _, unwanted := range []string{"keepalive ", "proxy_http_version"} {
		if strings.Contains(plain, unwanted) {
			t.Errorf("default site has %q; it must be nginx's default proxying:\n%s", unwanted, plain)
		}
	}
	for _, want := range []string{"server 127.0.0.1:2;", "server 127.0.0.1:3;", "access_log off;", "pid /tmp/x/nginx.pid;"} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
}

func TestConfigTLS(t *testing.T) {
	conf := Config("/tmp/x", []*Site{{Name: "tls", Upstreams: []string{"127.0.0.1:1"}, Keepalive: 8, Port: 8443, TLSCert: "/c.pem", TLSKey: "/k.pem"}})
	for _, want := range []string{"listen 127.0.0.1:8443 ssl;", "ssl_certificate /c.pem;", "ssl_certificate_key /k.pem;", "ssl_protocols TLSv1.2 TLSv1.3;"} {
		if !strings.Contains(conf, want) {
			t.Errorf("TLS site lacks %q:\n%s", want, conf)
		}
	}
}
