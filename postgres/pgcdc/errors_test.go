package pgcdc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCDCErrorClassification: errors a retry cannot fix are configuration
// errors, by SQLSTATE; connection failures and server restarts are not.
func TestCDCErrorClassification(t *testing.T) {
	pg := func(code, msg string) error {
		return fmt.Errorf("postgres: cdc: %w", &pgconn.PgError{Severity: "ERROR", Code: code, Message: msg})
	}
	for _, c := range []struct {
		err    error
		config bool
		hint   string
	}{
		{pg("55000", "logical decoding requires wal_level >= logical"), true, "wal_level = logical"},
		{pg("55000", "replication slots can only be used if max_replication_slots > 0"), true, "max_replication_slots"},
		{pg("42501", "must be superuser or replication role to start walsender"), true, "REPLICATION"},
		{pg("42501", "permission denied for table orders"), true, "SELECT"},
		{pg("42P01", `relation "nosuch" does not exist`), true, "tables"},
		{pg("3F000", `schema "nosuch" does not exist`), true, "tables"},
		{pg("28P01", `password authentication failed for user "x"`), true, "password"},
		{pg("28000", `no pg_hba.conf entry for replication connection`), true, "pg_hba.conf"},
		{pg("3D000", `database "nosuch" does not exist`), true, "database"},
		{pg("42704", `publication "p" does not exist`), true, "publication"},
		{pg("53400", "all replication slots are in use"), true, "max_replication_slots"},
		{pg("0A000", "not supported"), true, ""},
		{&ConfigError{Err: errors.New("x")}, true, ""},
		{pg("57P01", "terminating connection due to administrator command"), false, ""},
		{pg("57P03", "the database system is starting up"), false, ""},
		{pg("53300", "sorry, too many clients already"), false, ""},
		{pg("55006", `replication slot "s" is active for PID 42`), false, ""},
		{pg("08006", "connection failure"), false, ""},
		{pg("XX000", "internal"), false, ""},
		{fmt.Errorf("postgres: cdc: connect: %w", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), false, ""},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), false, ""},
		{io.ErrUnexpectedEOF, false, ""},
		{errors.New("postgres: cdc: publish: sink down"), false, ""},
	} {
		ce := configError(c.err)
		if (ce != nil) != c.config {
			t.Errorf("%v: configuration error = %v, want %v", c.err, ce != nil, c.config)
			continue
		}
		if ce == nil {
			continue
		}
		if !errors.Is(ce, ErrConfig) || !strings.Contains(ce.Error(), c.err.Error()) || !strings.Contains(ce.Error(), "not retried") {
			t.Errorf("%v: error %q", c.err, ce)
		}
		if !strings.Contains(ce.Hint, c.hint) {
			t.Errorf("%v: hint %q, want it to mention %q", c.err, ce.Hint, c.hint)
		}
	}
}

// fakeServerSource returns a source on a fakeServer answering code, msg,
// which reconnects every 10 ms, and the server's connection count.
func fakeServerSource(t *testing.T, code, msg string) (*Source, func() int) {
	t.Helper()
	dsn, conns := fakeServer(t, code, msg)
	src, err := New(dsn, newCDCRecorder(), WithTables("orders"), WithReconnect(10*time.Millisecond, 10*time.Millisecond),
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	return src, conns
}

// fakeServer is a PostgreSQL server that admits every connection and
// answers every query with the error code, msg: it injects a server error
// the shared server cannot be made to give (wal_level is logical there).
// It counts the connections.
func fakeServer(t *testing.T, code, msg string) (dsn string, conns func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu sync.Mutex
		n  int
		wg sync.WaitGroup
	)
	var open []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			n++
			open = append(open, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				fakeServe(c, code, msg)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return fmt.Sprintf("postgres://u@%s/db?sslmode=disable&connect_timeout=5", ln.Addr()), func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

func fakeServe(c net.Conn, code, msg string) {
	be := pgproto3.NewBackend(c, c)
	if _, err := be.ReceiveStartupMessage(); err != nil {
		return
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "15.0"})
	be.Send(&pgproto3.ParameterStatus{Name: "client_encoding", Value: "UTF8"})
	be.Send(&pgproto3.ParameterStatus{Name: "standard_conforming_strings", Value: "on"})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 2}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	failed := false // in an extended-protocol batch that failed: skip to Sync
	for {
		m, err := be.Receive()
		if err != nil {
			return
		}
		switch m.(type) {
		case *pgproto3.Query:
			be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: code, Message: msg})
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		case *pgproto3.Sync:
			failed = false
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		case *pgproto3.Terminate:
			return
		default:
			if !failed {
				failed = true
				be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: code, Message: msg})
			}
		}
		if be.Flush() != nil {
			return
		}
	}
}

// TestCDCRunFailsFastOnConfigError: Run returns a configuration error at
// once, without reconnecting, when the server refuses the configuration
// (here wal_level, injected by a fake server); it retried forever before,
// logging a warning every 5 s.
func TestCDCRunFailsFastOnConfigError(t *testing.T) {
	noLeaks(t)
	src, conns := fakeServerSource(t, "55000", "logical decoding requires wal_level >= logical")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := src.Run(ctx)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Code != "55000" || !strings.Contains(err.Error(), "wal_level = logical") {
		t.Fatalf("Run = %v, want a configuration error (55000, wal_level); %d connections, %d reconnects", err, conns(), src.Stats().Reconnects)
	}
	if r := src.Stats().Reconnects; r != 0 || conns() != 1 {
		t.Fatalf("%d reconnects, %d connections: a configuration error was retried", r, conns())
	}
}

// TestCDCRunRetriesTransientError: a server shutting down (57P01) is
// retried.
func TestCDCRunRetriesTransientError(t *testing.T) {
	noLeaks(t)
	src, conns := fakeServerSource(t, "57P01", "terminating connection due to administrator command")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for src.Stats().Reconnects < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d reconnects after 30s", src.Stats().Reconnects)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v after its context ended, want nil", err)
	}
	if conns() < 3 {
		t.Fatalf("%d connections for %d reconnects", conns(), src.Stats().Reconnects)
	}
}

// TestCDCRunFailsFastWithoutReplication: against the real server, a user
// without the REPLICATION attribute makes Run fail at once with a hint (the
// replication connection is refused with 42501; it was retried forever).
func TestCDCRunFailsFastWithoutReplication(t *testing.T) {
	noLeaks(t)
	env := newCDCEnv(t, "id int PRIMARY KEY")
	role := env.name + "_norepl"
	env.create(t, "ROLE", role, "LOGIN NOREPLICATION NOSUPERUSER")
	// The publication exists (created by its owner), so the source gets
	// as far as the replication connection.
	env.exec(t, fmt.Sprintf("CREATE PUBLICATION eventkit_%s FOR TABLE %s", env.name, env.table))
	cfg, err := pgx.ParseConfig(env.dsn)
	if err != nil {
		t.Fatal(err)
	}
	dsn := strings.Replace(env.dsn, "://"+cfg.User+"@", "://"+role+"@", 1)
	if !strings.Contains(dsn, role) {
		t.Skipf("cannot set the user of %s", env.dsn)
	}
	src, err := New(dsn, newCDCRecorder(), WithName(env.name), WithTables(env.table),
		WithReconnect(10*time.Millisecond, 10*time.Millisecond), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = src.Run(ctx)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Code != "42501" || !strings.Contains(ce.Hint, "REPLICATION") {
		t.Fatalf("Run = %v after %d reconnects, want a configuration error 42501 with a hint", err, src.Stats().Reconnects)
	}
	if r := src.Stats().Reconnects; r != 0 {
		t.Fatalf("%d reconnects: a configuration error was retried", r)
	}
}
