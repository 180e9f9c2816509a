package eventkittest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Child is the test binary re-executed as a child process, for tests that
// kill a process (a consumer, a relay, a server) and check what survives.
// The child's stdout is read line by line for the markers it prints
// (WaitLine) and drained to the end, so that it never blocks on a full
// pipe; its stderr goes to the test's stderr.
type Child struct {
	run  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the child has ended and its stdout is read
	err  error         // of exec.Cmd.Wait, set before done is closed

	mu      sync.Mutex
	lines   []string      // stdout lines, all of them
	next    int           // the first line WaitLine has not looked at
	partial []byte        // the line being written
	more    chan struct{} // closed, and replaced, when a line arrives
}

// childLogLines is how many of its last stdout lines a child's cleanup
// logs when the test failed.
const childLogLines = 100

// StartChild starts the test binary (os.Args[0]) with -test.run=run and
// -test.count=1, and env (NAME=value) added to the environment: the
// variables that tell the child what to do. The test fails if the child
// cannot start. A cleanup kills the child if it is still running and waits
// for it; if the test failed, it logs the last lines the child printed on
// stdout.
func StartChild(t testing.TB, run string, env ...string) *Child {
	t.Helper()
	c := &Child{
		run:  run,
		cmd:  exec.Command(os.Args[0], "-test.run="+run, "-test.count=1"),
		done: make(chan struct{}),
		more: make(chan struct{}),
	}
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stdout = (*childStdout)(c)
	c.cmd.Stderr = os.Stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting the child %s: %v", run, err)
	}
	go func() {
		c.err = c.cmd.Wait() // returns once stdout is read to the end
		c.mu.Lock()
		if len(c.partial) > 0 {
			c.addLine(string(c.partial))
			c.partial = nil
		}
		c.mu.Unlock()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = c.Kill()
		if t.Failed() && len(c.lines) > 0 {
			lines, skipped := c.lines, ""
			if len(lines) > childLogLines {
				skipped = fmt.Sprintf(" (its last %d lines of %d)", childLogLines, len(lines))
				lines = lines[len(lines)-childLogLines:]
			}
			t.Logf("stdout of the child %s%s:\n%s", run, skipped, strings.Join(lines, "\n"))
		}
	})
	return c
}

// WaitLine returns the rest of the child's first stdout line, after the
// ones an earlier WaitLine returned, that starts with prefix. If the child
// ends first, or no such line comes within timeout, the child is killed
// and the test fails.
func (c *Child) WaitLine(t testing.TB, prefix string, timeout time.Duration) string {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	ended := false
	for {
		c.mu.Lock()
		for c.next < len(c.lines) {
			line := c.lines[c.next]
			c.next++
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				c.mu.Unlock()
				return rest
			}
		}
		more := c.more
		c.mu.Unlock()
		if ended {
			t.Fatalf("the child %s ended (%v) before printing a line that starts with %q", c.run, c.err, prefix)
		}
		select {
		case <-more:
		case <-c.done:
			ended = true // every line is in: look at the last ones
		case <-timer.C:
			_ = c.Kill()
			t.Fatalf("the child %s printed no line that starts with %q within %s", c.run, prefix, timeout)
		}
	}
}

// Signal sends sig to the child; it does not wait for the child to end.
func (c *Child) Signal(sig os.Signal) error {
	return c.cmd.Process.Signal(sig)
}

// Kill kills the child (SIGKILL) unless it has already ended, and waits for
// it to end. It returns the error of sending the signal; nil when the child
// had ended already. It may be called more than once, and from any
// goroutine.
func (c *Child) Kill() error {
	err := c.cmd.Process.Kill()
	<-c.done
	if errors.Is(err, os.ErrProcessDone) {
		err = nil
	}
	return err
}

// Wait waits for the child to end and returns how it ended, as
// exec.Cmd.Wait does: nil after a clean exit.
func (c *Child) Wait() error {
	<-c.done
	return c.err
}

// childStdout is the child's stdout: it splits what the child writes into
// lines.
type childStdout Child

func (w *childStdout) Write(p []byte) (int, error) {
	c := (*Child)(w)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partial = append(c.partial, p...)
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		c.addLine(string(c.partial[:i]))
		c.partial = c.partial[i+1:]
	}
	if len(c.partial) == 0 {
		c.partial = nil // let the buffer go
	}
	return len(p), nil
}

// addLine records a stdout line (without its line ending) and wakes the
// WaitLine calls; c.mu is held.
func (c *Child) addLine(line string) {
	c.lines = append(c.lines, strings.TrimSuffix(line, "\r"))
	close(c.more)
	c.more = make(chan struct{})
}
