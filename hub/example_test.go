package hub_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/eventkit/eventkit/hub"
)

// ExampleNew runs the server on the embedded JetStream default, in a
// temporary data directory, and posts an event to it in binary mode.
func ExampleNew() {
	dir, _ := os.MkdirTemp("", "eventkit-example-")
	defer os.RemoveAll(dir)
	s, err := hub.New(hub.Config{DataDir: dir, Listen: "127.0.0.1:0"},
		hub.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/events", strings.NewReader(`{"order":"o-1"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("ce-specversion", "1.0")
	req.Header.Set("ce-id", "o-1")
	req.Header.Set("ce-source", "/shop")
	req.Header.Set("ce-type", "orders.created")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status) // the event is on disk

	stop()
	fmt.Println(<-done)
	// Output:
	// 204 No Content
	// <nil>
}
