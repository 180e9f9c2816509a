package cesql_test

import (
	"context"
	"strings"
	"testing"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/pipeline/cesql"
	"github.com/eventkit/eventkit/pipeline/pipeconf"
)

func TestCompile(t *testing.T) {
	keep, err := cesql.Compile("type = 'dev.eventkit.test' AND subject LIKE 'order-%'")
	if err != nil {
		t.Fatal(err)
	}
	e := eventkittest.NewEvent("1")
	for subj, want := range map[string]bool{"order-1": true, "invoice-1": false} {
		e.SetSubject(subj)
		if got, err := keep(e); err != nil || got != want {
			t.Errorf("subject %s: %v, %v; want %v", subj, got, err, want)
		}
	}
	notBool, err := cesql.Compile("subject")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := notBool(e); err == nil || !eventkit.IsPermanent(err) {
		t.Fatalf("a non-boolean expression: %v; want a permanent error", err)
	}
	if _, err := cesql.Compile("type = = 'x'"); err == nil {
		t.Fatal("a bad expression compiled")
	}
}

// A bad expression in a definition names its line and field.
func TestKindInDefinition(t *testing.T) {
	b := memory.New()
	defer b.Close()
	l := &pipeconf.Loader{Transports: pipeconf.Fixed{Sub: b, Pub: b}, Kinds: map[string]pipeconf.Kind{"sql": cesql.Kind}}
	def := "input: {url: m, topic: in}\nprocessors:\n  - name: f\n    sql: {where: \"type = = 'x'\"}\noutputs:\n  - {url: m, topic: out}\n"
	_, err := l.Load(context.Background(), "f.yaml", []byte(def))
	if err == nil || !strings.Contains(err.Error(), "f.yaml:4: processors[0].sql.where: cesql:") {
		t.Fatalf("Load = %v", err)
	}
}
