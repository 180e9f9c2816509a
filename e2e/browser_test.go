package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser is a headless Chromium tab and the directory its screenshots go
// to.
type browser struct {
	t         *testing.T
	ctx       context.Context
	artifacts string
}

// chromiumPath finds Debian's chromium; without it the test skips, naming
// it, or fails under CI=true.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium is not installed (Debian's chromium package: apt-get install chromium, which scripts/services.sh does as root)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// artifactsDir is $EVENTKIT_ARTIFACTS, or a new temporary directory; it is
// printed either way.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("EVENTKIT_ARTIFACTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "eventkit-console-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// newBrowser starts headless Chromium on a new empty profile with the
// flags that keep it off the network (this machine has none: without them
// it waits on lookups).
func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	}
	for _, f := range []string{"headless", "no-sandbox", "disable-gpu", "disable-quic", "no-first-run",
		"disable-background-networking", "disable-component-update", "disable-sync",
		"no-default-browser-check", "disable-extensions", "disable-dev-shm-usage"} {
		opts = append(opts, chromedp.Flag(f, true))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser, on ctx itself: the end of the
	// context of the first run ends the browser.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}
	return &browser{t: t, ctx: ctx, artifacts: artifactsDir(t)}
}

// do runs steps, failing the test (with the page's text) on an error.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\npage: %s", what, err, b.pageText())
	}
}

// eval evaluates expr into v.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitTrue polls the JavaScript predicate expr until it holds (a deadline
// of 30 s), failing the test with the page's text otherwise.
func (b *browser) waitTrue(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 35*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		b.shot("failed-" + strings.NewReplacer(" ", "-", "/", "-").Replace(what))
		b.t.Fatalf("waiting for %s (%s): %v\npage: %s", what, expr, err, b.pageText())
	}
}

func (b *browser) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return s
}

// shot saves a screenshot of the page as name.png in the artifacts.
func (b *browser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(b.artifacts, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
	}
}

// goTo opens a view of the console and waits until it has loaded its data.
func (b *browser) goTo(view string) {
	b.t.Helper()
	b.do("open "+view, chromedp.Evaluate[chromedp.Void](`delete document.body.dataset.loaded; location.hash = "#`+view+`"`))
	b.waitTrue(view+" loaded", `document.body.dataset.loaded === "`+view+`"`)
}

// cells returns the text of the cells of each row of the table sel.
func (b *browser) cells(sel string) [][]string {
	b.t.Helper()
	return eval[[][]string](b, `Array.from(document.querySelectorAll(`+jsString(sel+" tbody tr")+`)).map(tr => Array.from(tr.cells).map(td => td.textContent))`)
}

// jsString quotes s for JavaScript.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// setInput replaces an input's value.
func (b *browser) setInput(sel, value string) {
	b.t.Helper()
	b.do("set "+sel, chromedp.SetValue(chromedp.CSS(sel), value))
}

// rowWith returns the cells of the row of table sel whose column col
// reads want (nil when none).
func (b *browser) rowWith(sel string, col int, want string) []string {
	for _, r := range b.cells(sel) {
		if col < len(r) && r[col] == want {
			return r
		}
	}
	return nil
}

// on returns b failing t (a subtest) instead of its own test.
func (b *browser) on(t *testing.T) *browser {
	c := *b
	c.t = t
	return &c
}
