// Package tlsca gives plumbline TLS by default: a local certificate authority
// created on first start with a server certificate for localhost, *.localhost,
// the loopback addresses and the configured names (Ensure), hot reloading of
// user-supplied certificates (Reloader), and the server tls.Config.
//
// It owns the files in its directory (ca.crt, ca.key, server.crt,
// server.key) and nothing else. It must not import any other plumbline
// package.
package tlsca
