package eventkittest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ServerProcess is a server program that a test runs on a free port of
// 127.0.0.1 and can restart: for the restart feature of TestTransport and
// for fault tests, which must not restart the shared servers that other
// tests use.
type ServerProcess struct {
	t   testing.TB
	c   ServerCommand
	bin string
	dir string
	// port is the server's port.
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has ended
	out  *SyncBuffer
}

// ServerCommand says how to run a server program for StartServerProcess.
type ServerCommand struct {
	// Program is the server's program, a path or a name looked up in PATH.
	Program string
	// Args returns the program's arguments for the chosen port and data
	// directory (empty at first, kept across restarts).
	Args func(port int, dir string) []string
	// Init, when set, returns a command (program and arguments) run once
	// in dir, as User, before the first start; for example initdb.
	Init func(dir string) []string
	// User, when set and the test runs as root, is the user that the
	// server runs as (for servers that refuse root) and owns dir.
	User string
	// Stop is the signal that stops the server; nil means SIGTERM.
	Stop os.Signal
	// Ready, when set, reports whether the server at addr is ready to
	// serve; nil means that it accepts TCP connections.
	Ready func(ctx context.Context, addr string) error
}

// StartServerProcess starts the server described by c and waits (up to
// 60s) until it is ready. Without the program, the test skips (fails
// under CI=true). The server is stopped and its directory removed when
// the test ends; its output is logged if the test failed.
func StartServerProcess(t testing.TB, c ServerCommand) *ServerProcess {
	t.Helper()
	bin, err := exec.LookPath(c.Program)
	if err != nil {
		if InCI() {
			t.Fatalf("%s is not installed: %v", c.Program, err)
		}
		t.Skipf("%s is not installed: %v", c.Program, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	// Not t.TempDir: its parent is closed to other users than root.
	dir, err := os.MkdirTemp("", "eventkittest-server-")
	if err != nil {
		t.Fatal(err)
	}
	p := &ServerProcess{t: t, c: c, bin: bin, dir: dir, port: port, out: &SyncBuffer{}}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("output of %s:\n%s", c.Program, p.out.String())
		}
		_ = os.RemoveAll(dir)
	})
	cred := p.credential()
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	if c.Init != nil {
		argv := c.Init(dir)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
	p.start()
	return p
}

// Addr returns the server's address, "127.0.0.1:port".
func (p *ServerProcess) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// Port returns the server's port.
func (p *ServerProcess) Port() int { return p.port }

// Restart stops the server (gracefully; SIGKILL after 60s) and starts it
// again on the same port and directory, returning once it is ready.
func (p *ServerProcess) Restart() {
	p.t.Helper()
	p.stop()
	p.start()
}

// credential returns the credential of c.User, or nil to run as the test.
func (p *ServerProcess) credential() *syscall.Credential {
	if p.c.User == "" || os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(p.c.User)
	if err != nil {
		p.t.Fatalf("user %s: %v", p.c.User, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

func (p *ServerProcess) start() {
	p.t.Helper()
	cmd := exec.Command(p.bin, p.c.Args(p.port, p.dir)...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.credential()}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	ready := p.c.Ready
	if ready == nil {
		ready = func(ctx context.Context, addr string) error {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				_ = conn.Close()
			}
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready(ctx, p.Addr())
		if err == nil {
			return
		}
		select {
		case <-done:
			p.t.Fatalf("%s ended at start: %s\n%s", p.bin, cmd.ProcessState, p.out.String())
		case <-ctx.Done():
			p.t.Fatalf("%s is not ready on %s: %v\n%s", p.bin, p.Addr(), err, p.out.String())
		case <-tick.C:
		}
	}
}

// Kill kills the server with SIGKILL, as a crash would, and waits for it
// to end; Restart starts it again. It does nothing when the server is not
// running.
func (p *ServerProcess) Kill() { p.halt(syscall.SIGKILL) }

func (p *ServerProcess) stop() {
	sig := p.c.Stop
	if sig == nil {
		sig = syscall.SIGTERM
	}
	p.halt(sig)
}

// halt sends sig to the server and waits for it to end (SIGKILL after
// 60s).
func (p *ServerProcess) halt(sig os.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	_, _ = fmt.Fprintf(p.out, "--- %s stopped: %s\n", p.bin, cmd.ProcessState)
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers,
// for example the destination of a logger that a test reads.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends b to the buffer.
func (s *SyncBuffer) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(b)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
