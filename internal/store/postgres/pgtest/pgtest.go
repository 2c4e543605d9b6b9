// Package pgtest gives tests a fresh PostgreSQL database on the server
// named by PLUMBLINE_TEST_POSTGRES (a URL whose user may create
// databases; scripts/test-postgres.sh starts a private one, make test
// exports its URL, and .ci/run starts one of its own for the run). Without it a test is skipped, or fails when PLUMBLINE_CI=1:
// CI installs everything, so a skip there would hide a missing piece.
//
// This package is for tests only.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Env names the variable holding the server's URL.
const Env = "PLUMBLINE_TEST_POSTGRES"

// URL creates an empty database for t and returns its URL; the database
// is dropped when t ends.
func URL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(Env)
	if base == "" {
		const why = Env + " is not set: start a server with scripts/test-postgres.sh and export its URL"
		if os.Getenv("PLUMBLINE_CI") == "1" {
			t.Fatal("PLUMBLINE_CI=1 and a PostgreSQL test would be skipped: " + why)
		}
		t.Skip(why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v (is the server down? bash scripts/test-postgres.sh starts the test cluster, or finds it healthy, and prints its URL)", Env, err)
	}
	defer admin.Close(context.Background())
	b := make([]byte, 6)
	rand.Read(b)
	name := "plumbline_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", Env, err)
	}
	u.Path = "/" + name
	return u.String()
}
