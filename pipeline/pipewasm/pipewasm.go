// Package pipewasm runs WebAssembly modules as pipeline stages, on wazero
// (github.com/tetratelabs/wazero, pure Go), in its own package so that only
// its users link the runtime.
//
// A module maps an event's data to new data. It exports its memory as
// "memory" and two functions:
//
//	alloc(len i32) -> ptr i32               where the host writes len bytes of input
//	process(ptr i32, len i32) -> i64        the output: ptr << 32 | len, in its memory
//
// Limits: each instance's memory is bounded (Config.MemoryPages of 64 KiB; a
// module that declares or grows past it fails), and each call is bounded in
// time (Config.Timeout; the instance is closed and replaced when it runs
// over). A call that fails or runs over fails the event with a permanent
// error. Instances are not shared between goroutines: the stage keeps one
// per worker.
package pipewasm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/pipeline"
	"github.com/eventkit/eventkit/pipeline/pipeconf"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Config bounds a module.
type Config struct {
	// MemoryPages bounds each instance's memory, in 64 KiB pages (default 16,
	// 1 MiB).
	MemoryPages uint32
	// Timeout bounds each call, in wall-clock time: on a loaded machine a
	// call also waits for the CPU (default 1s).
	Timeout time.Duration
}

// Module is a compiled module and its instances.
type Module struct {
	name     string
	cfg      Config
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	idle     chan api.Module
}

// Compile compiles wasm with the limits of cfg; Close releases it.
func Compile(ctx context.Context, name string, wasm []byte, cfg Config) (*Module, error) {
	if cfg.MemoryPages == 0 {
		cfg.MemoryPages = 16
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithMemoryLimitPages(cfg.MemoryPages).WithCloseOnContextDone(true))
	compiled, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("pipewasm: %s: %w", name, err)
	}
	m := &Module{name: name, cfg: cfg, rt: rt, compiled: compiled, idle: make(chan api.Module, 64)}
	inst, err := m.instance(ctx) // fail now on a module that cannot run
	if err != nil {
		_ = rt.Close(ctx)
		return nil, err
	}
	m.idle <- inst
	return m, nil
}

// Close releases the runtime and every instance.
func (m *Module) Close(ctx context.Context) error { return m.rt.Close(ctx) }

func (m *Module) instance(ctx context.Context) (api.Module, error) {
	inst, err := m.rt.InstantiateModule(ctx, m.compiled, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		return nil, fmt.Errorf("pipewasm: %s: instantiate: %w", m.name, err)
	}
	if inst.Memory() == nil || inst.ExportedFunction("alloc") == nil || inst.ExportedFunction("process") == nil {
		_ = inst.Close(ctx)
		return nil, fmt.Errorf("pipewasm: %s: the module must export memory, alloc and process", m.name)
	}
	return inst, nil
}

// Call runs the module on data and returns its output (a copy).
func (m *Module) Call(ctx context.Context, data []byte) ([]byte, error) {
	var inst api.Module
	select {
	case inst = <-m.idle:
	default:
		var err error
		if inst, err = m.instance(ctx); err != nil {
			return nil, err
		}
	}
	out, err := m.call(ctx, inst, data)
	if err != nil {
		_ = inst.Close(context.Background()) // its state is unknown: never reused
		return nil, err
	}
	select {
	case m.idle <- inst:
	default:
		_ = inst.Close(context.Background())
	}
	return out, nil
}

func (m *Module) call(ctx context.Context, inst api.Module, data []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	res, err := inst.ExportedFunction("alloc").Call(ctx, uint64(len(data)))
	if err != nil {
		return nil, m.fail("alloc", ctx, err)
	}
	ptr := uint32(res[0])
	if !inst.Memory().Write(ptr, data) {
		return nil, fmt.Errorf("pipewasm: %s: alloc gave %d, outside memory for %d bytes", m.name, ptr, len(data))
	}
	res, err = inst.ExportedFunction("process").Call(ctx, uint64(ptr), uint64(len(data)))
	if err != nil {
		return nil, m.fail("process", ctx, err)
	}
	outPtr, outLen := uint32(res[0]>>32), uint32(res[0])
	out, ok := inst.Memory().Read(outPtr, outLen)
	if !ok {
		return nil, fmt.Errorf("pipewasm: %s: output %d+%d outside memory", m.name, outPtr, outLen)
	}
	return append([]byte(nil), out...), nil
}

func (m *Module) fail(fn string, ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("pipewasm: %s: %s ran over %s: %w", m.name, fn, m.cfg.Timeout, context.DeadlineExceeded)
	}
	return fmt.Errorf("pipewasm: %s: %s: %w", m.name, fn, err)
}

// Map returns a stage that replaces each event's data by the module's
// output (its type by typ unless typ is ""). A failed call fails the event
// with a permanent error.
func Map(m *Module, typ string, opts ...pipeline.Option) *pipeline.Stage {
	return pipeline.Map(m.name, func(ctx context.Context, e event.Event) (event.Event, error) {
		out, err := m.Call(ctx, e.Data())
		if err != nil {
			return e, eventkit.Permanent(err)
		}
		e = e.Clone()
		e.DataEncoded = out
		if typ != "" {
			e.SetType(typ)
		}
		return e, nil
	}, opts...)
}

// Kind is the "wasm" processor kind of package pipeconf:
//
//   - name: redact
//     wasm: {module: redact.wasm, memory_pages: 16, timeout: 1s, type: order.redacted}
//
// The module file is read and compiled when the definition is loaded, and
// released when the loaded pipeline is closed.
func Kind(name string, n *pipeconf.Node, opts []pipeline.Option) *pipeline.Stage {
	path := n.String("module", true)
	pages := n.Int("memory_pages", 16)
	timeout := n.Duration("timeout", time.Second)
	typ := n.String("type", false)
	if path == "" {
		return nil
	}
	if pages < 1 {
		n.Errorf("memory_pages", "must be at least 1, got %d", pages)
		return nil
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		n.Errorf("module", "%v", err)
		return nil
	}
	m, err := Compile(context.Background(), name, wasm, Config{MemoryPages: uint32(pages), Timeout: timeout})
	if err != nil {
		n.Errorf("module", "%v", err)
		return nil
	}
	n.OnClose(func() error { return m.Close(context.Background()) })
	if typ != "" {
		opts = append(opts, pipeline.Produces(pipeline.EventType{Type: typ}))
	}
	return Map(m, typ, opts...)
}

var _ pipeconf.Kind = Kind
