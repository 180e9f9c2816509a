// Package headerlines builds test requests from header lines ("name:
// value" per line), as the ingress fuzz tests of cehttp and hub write
// them. It is for tests only.
package headerlines

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
)

// Post returns a POST /events request with body and the header lines of
// headers; lines without a colon, or whose name is empty or holds white
// space or NUL, are skipped (net/http would not send them).
func Post(headers string, body []byte) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/events", bytes.NewReader(body))
	for _, l := range strings.Split(headers, "\n") {
		k, v, ok := strings.Cut(l, ":")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t\r\x00") {
			continue
		}
		req.Header.Add(k, strings.TrimSpace(v))
	}
	return req
}
