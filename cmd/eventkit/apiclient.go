package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/eventkit/eventkit/cehttp"
)

// apiClient calls the server's HTTP API with the credentials of pub and
// tail: a bearer token and, with a secret, an RFC 9421 signature.
type apiClient struct {
	server, token string
	secret        []byte
}

// newAPIClient returns a client of the server at server (a trailing slash
// is dropped), reading the signing secret from secretFile or the
// environment (signingSecret).
func newAPIClient(server, token, secretFile string) (*apiClient, error) {
	secret, err := signingSecret(secretFile)
	if err != nil {
		return nil, err
	}
	return &apiClient{server: strings.TrimSuffix(server, "/"), token: token, secret: secret}, nil
}

// apiFlags declares --server, --token and --hmac-secret-file on fs; the
// returned function makes the client once fs is parsed.
func apiFlags(fs *flag.FlagSet) func() (*apiClient, error) {
	server := fs.String("server", defaultServer(), "server `URL` ($EVENTKIT_SERVER)")
	token := fs.String("token", os.Getenv("EVENTKIT_TOKEN"), "bearer `token` ($EVENTKIT_TOKEN)")
	secretFile := secretFlag(fs)
	return func() (*apiClient, error) { return newAPIClient(*server, *token, *secretFile) }
}

// maxAPIAnswer bounds an answer of the API read whole.
const maxAPIAnswer = 256 << 20

// do sends method path (with its query) and body (nil: none, else JSON)
// and returns the response of a 2xx answer, whose body the caller closes.
// Any other answer is an error carrying the problem's title and detail,
// escaped for a terminal.
func (c *apiClient) do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.secret != nil {
		if err := cehttp.SignRequest(req, body, "", c.secret); err != nil {
			return nil, err
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var p struct{ Detail, Title string }
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &p) == nil && (p.Detail != "" || p.Title != "") {
		msg = strings.TrimSpace(p.Title + ": " + p.Detail)
	}
	return nil, errors.New(printable(method + " " + path + ": " + resp.Status + ": " + msg))
}

// fetch is do without a request body, returning the whole answer (at most
// maxAPIAnswer bytes).
func (c *apiClient) fetch(ctx context.Context, method, path string) ([]byte, error) {
	resp, err := c.do(ctx, method, path, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, maxAPIAnswer))
}
