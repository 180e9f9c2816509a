package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/eventkit/eventkit/eventkittest"
)

// TestPubTailSigned: against a server that requires RFC 9421 signatures
// (auth.hmac_secret), pub and tail are refused without the secret, and
// sign their requests with it, read from $EVENTKIT_HMAC_SECRET or from the
// file --hmac-secret-file (or $EVENTKIT_HMAC_SECRET_FILE) names.
func TestPubTailSigned(t *testing.T) {
	const secret = "serve-signed-secret"
	dir := t.TempDir()
	cfg := filepath.Join(dir, "eventkit.yaml")
	if err := os.WriteFile(cfg, []byte("auth:\n  hmac_secret: env:EVENTKIT_TEST_SERVE_SECRET\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("EVENTKIT_TEST_SERVE_SECRET", secret)
	t.Setenv(secretEnv, "")
	t.Setenv(secretEnv+"_FILE", "")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	base, _, served := startServe(t, ctx, "--config", cfg, "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"))
	pub := func(id string, args ...string) error {
		return runPub(ctx, append([]string{"--server", base, "--type", "signed.t", "--id", id}, args...), io.Discard, io.Discard)
	}

	// Unsigned, or signed with another secret: refused.
	if err := runTail(ctx, []string{"--server", base, "signed.>"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("unsigned tail: %v; want a 401 error", err)
	}
	if err := pub("unsigned"); err == nil {
		t.Fatal("unsigned pub accepted")
	}
	t.Setenv(secretEnv, "not-the-secret")
	if err := pub("wrong"); err == nil {
		t.Fatal("pub signed with another secret accepted")
	}

	// The tail signs with the secret of the file.
	tailCtx, stopTail := context.WithCancel(ctx)
	defer stopTail()
	var lines eventkittest.SyncBuffer
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = runTail(tailCtx, []string{"--server", base, "--hmac-secret-file", secretFile, "signed.>"}, &lines, io.Discard)
	})
	probes := 0
	eventually(t, "the signed tail connected", func() bool {
		probes++
		return pub("probe-"+strconv.Itoa(probes), "--hmac-secret-file", secretFile) == nil && strings.Contains(lines.String(), "id=probe-")
	})

	t.Setenv(secretEnv, secret)
	if err := pub("from-env"); err != nil {
		t.Fatalf("pub signed with $%s: %v", secretEnv, err)
	}
	t.Setenv(secretEnv, "")
	t.Setenv(secretEnv+"_FILE", secretFile)
	if err := pub("from-env-file"); err != nil {
		t.Fatalf("pub signed with $%s_FILE: %v", secretEnv, err)
	}
	eventually(t, "the signed events tailed", func() bool {
		l := lines.String()
		return strings.Contains(l, "id=from-env ") && strings.Contains(l, "id=from-env-file ")
	})
	if l := lines.String(); strings.Contains(l, "id=unsigned") || strings.Contains(l, "id=wrong") {
		t.Fatalf("a refused event was stored:\n%s", l)
	}
	stopTail()
	wg.Wait()
	stop()
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
}
