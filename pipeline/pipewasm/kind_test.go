package pipewasm_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/pipeline/pipeconf"
	"github.com/eventkit/eventkit/pipeline/pipewasm"
)

// The "wasm" kind in a definition: the module maps the data; a missing
// module names its line and field.
func TestKind(t *testing.T) {
	ctx := context.Background()
	bus := memory.New()
	defer bus.Close()
	path := filepath.Join(t.TempDir(), "upper.wasm")
	if err := os.WriteFile(path, upper, 0o600); err != nil {
		t.Fatal(err)
	}
	l := &pipeconf.Loader{Transports: pipeconf.Fixed{Sub: bus, Pub: bus}, Kinds: map[string]pipeconf.Kind{"wasm": pipewasm.Kind}}
	def := fmt.Sprintf("input: {url: m, topic: in}\nprocessors:\n  - name: up\n    wasm: {module: %q, timeout: 1m, type: shouted}\noutputs:\n  - {url: m, topic: out}\n", path)
	loaded, err := l.Load(ctx, "w.yaml", []byte(def))
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	out, _ := bus.Subscribe(ctx, "out")
	if err := loaded.Pipeline.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer loaded.Pipeline.Shutdown(ctx)
	if err := bus.Publish(ctx, "in", eventkittest.NewEvent("abc")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-out.Messages():
		if m.Event.Type() != "shouted" || string(m.Event.Data()) != `{"ID":"ABC"}` {
			t.Fatalf("output %s %s", m.Event.Type(), m.Event.Data())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no output")
	}
	missing := strings.Replace(def, path, path+".missing", 1)
	if _, err := l.Load(ctx, "w.yaml", []byte(missing)); err == nil || !strings.Contains(err.Error(), "w.yaml:4: processors[0].wasm.module:") {
		t.Fatalf("Load = %v", err)
	}
}
