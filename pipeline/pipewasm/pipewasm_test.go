package pipewasm_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit/pipeline/pipewasm"
)

// module encodes a WebAssembly module by hand (no compiler needed): memory
// of minPages exported as "memory", alloc(len) returning 1024, and
// process(ptr, len) with the given locals (beyond its two parameters) and
// body.
func module(minPages byte, locals, body []byte) []byte {
	section := func(id byte, content ...byte) []byte {
		return append([]byte{id, byte(len(content))}, content...)
	}
	str := func(s string) []byte { return append([]byte{byte(len(s))}, s...) }
	exports := []byte{3}
	exports = append(append(exports, str("memory")...), 0x02, 0)
	exports = append(append(exports, str("alloc")...), 0x00, 0)
	exports = append(append(exports, str("process")...), 0x00, 1)
	alloc := []byte{0, 0x41, 0x80, 0x08, 0x0b} // no locals; i32.const 1024; end
	process := append(append([]byte{}, locals...), body...)
	code := []byte{2, byte(len(alloc))}
	code = append(code, alloc...)
	code = append(code, byte(len(process)))
	code = append(code, process...)
	var m []byte
	m = append(m, 0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00)
	m = append(m, section(1, 2, 0x60, 1, 0x7f, 1, 0x7f, 0x60, 2, 0x7f, 0x7f, 1, 0x7e)...) // (i32)->i32, (i32 i32)->i64
	m = append(m, section(3, 2, 0, 1)...)
	m = append(m, section(5, 1, 0x00, minPages)...)
	m = append(m, section(7, exports...)...)
	m = append(m, section(10, code...)...)
	return m
}

// upper: ASCII letters of the input upper-cased in place; returns ptr<<32|len.
var upper = module(1,
	[]byte{1, 3, 0x7f}, // locals 2 (i), 3 (byte), 4 (address): i32
	[]byte{
		0x02, 0x40, 0x03, 0x40, // block loop
		0x20, 2, 0x20, 1, 0x4f, 0x0d, 1, // if i >= len: break
		0x20, 0, 0x20, 2, 0x6a, 0x22, 4, 0x2d, 0, 0, 0x21, 3, // b = mem[ptr+i]
		0x20, 3, 0x41, 0xe1, 0x00, 0x4f, 0x20, 3, 0x41, 0xfa, 0x00, 0x4d, 0x71, // 'a' <= b <= 'z'
		0x04, 0x40, 0x20, 4, 0x20, 3, 0x41, 0x20, 0x6b, 0x3a, 0, 0, 0x0b, // mem[addr] = b - 32
		0x20, 2, 0x41, 1, 0x6a, 0x21, 2, 0x0c, 0, // i++; continue
		0x0b, 0x0b, // end loop, end block
		0x20, 0, 0xad, 0x42, 32, 0x86, 0x20, 1, 0xad, 0x84, // ptr<<32 | len
		0x0b,
	})

// spin never returns.
var spin = module(1, []byte{0}, []byte{0x03, 0x40, 0x0c, 0, 0x0b, 0x42, 0, 0x0b})

func TestUpper(t *testing.T) {
	ctx := context.Background()
	// A generous limit: this test is about the output, TestTimeLimit
	// about the limit.
	m, err := pipewasm.Compile(ctx, "upper", upper, pipewasm.Config{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	for range 3 { // instances are reused
		out, err := m.Call(ctx, []byte(`{"name":"ada"}`))
		if err != nil || string(out) != `{"NAME":"ADA"}` {
			t.Fatalf("Call = %q, %v", out, err)
		}
	}
}

// A call that runs over its time limit is stopped, and the module stays
// usable.
func TestTimeLimit(t *testing.T) {
	ctx := context.Background()
	m, err := pipewasm.Compile(ctx, "spin", spin, pipewasm.Config{Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	for range 2 {
		start := time.Now()
		if _, err := m.Call(ctx, []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Call = %v; want the deadline", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("the spinning call took %s to stop", d)
		}
	}
}

// A module that wants more memory than the limit is refused.
func TestMemoryLimit(t *testing.T) {
	ctx := context.Background()
	big := module(4, []byte{0}, []byte{0x42, 0, 0x0b})
	if _, err := pipewasm.Compile(ctx, "big", big, pipewasm.Config{MemoryPages: 2}); err == nil || !strings.Contains(err.Error(), "over limit of 2 pages") {
		t.Fatalf("Compile = %v; want the memory limit refused", err)
	}
	if m, err := pipewasm.Compile(ctx, "fits", big, pipewasm.Config{MemoryPages: 4}); err != nil {
		t.Fatalf("within the limit: %v", err)
	} else {
		_ = m.Close(ctx)
	}
}

// The cost per event of a WASM stage (bench/pipeline/RESULTS.md).
func BenchmarkCall(b *testing.B) {
	ctx := context.Background()
	m, err := pipewasm.Compile(ctx, "upper", upper, pipewasm.Config{Timeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(ctx)
	data := []byte(`{"id":"o-000001","customer":"c-42","total":150}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Call(ctx, data); err != nil {
			b.Fatal(err)
		}
	}
}
