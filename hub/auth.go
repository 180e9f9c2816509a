package hub

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/eventkit/eventkit/cehttp"
)

// The scopes a credential may grant.
const (
	// ScopePublish: POST and OPTIONS /events.
	ScopePublish = "publish"
	// ScopeRead: GET /events/stream (and later read and replay routes).
	ScopeRead = "read"
	// ScopeAdmin: administration routes (subscriptions, dead letters,
	// console).
	ScopeAdmin = "admin"
	// ScopeMetrics: GET /metrics.
	ScopeMetrics = "metrics"
)

// AllScopes are the scopes of a credential configured without a list.
var AllScopes = []string{ScopePublish, ScopeRead, ScopeAdmin, ScopeMetrics}

// TokenConfig is one bearer token and the scopes it grants.
type TokenConfig struct {
	// Token is the secret ("env:NAME" reads the environment).
	Token string `yaml:"token"`
	// Scopes it grants (every scope when empty).
	Scopes []string `yaml:"scopes"`
}

// authn checks the credentials of every route but the health probes.
// Each configured scheme is required: a bearer token (when tokens are
// configured) and a request signature (when an HMAC secret is); a request
// is allowed a route when every credential it needed grants the route's
// scope.
type authn struct {
	tokens     map[[sha256.Size]byte][]string // sha256 of each token → its scopes
	verifier   *cehttp.Verifier
	hmacScopes []string
	legacy     []byte // the secret of the legacy body signature, when enabled
}

func newAuthn(a AuthConfig) *authn {
	n := &authn{}
	add := func(tok string, scopes []string) {
		if tok = secret(tok); tok == "" {
			return
		}
		if len(scopes) == 0 {
			scopes = AllScopes
		}
		if n.tokens == nil {
			n.tokens = map[[sha256.Size]byte][]string{}
		}
		n.tokens[sha256.Sum256([]byte(tok))] = scopes
	}
	add(a.Token, nil)
	for _, t := range a.Tokens {
		add(t.Token, t.Scopes)
	}
	if sec := secret(a.HMACSecret); sec != "" {
		n.verifier = cehttp.NewVerifier([]byte(sec), cehttp.WithClockSkew(time.Duration(a.ClockSkew)),
			cehttp.WithReplayCacheSize(a.ReplayCacheSize))
		n.hmacScopes = a.HMACScopes
		if len(n.hmacScopes) == 0 {
			n.hmacScopes = AllScopes
		}
		if a.LegacyBodySignature {
			n.legacy = []byte(sec)
		}
	}
	return n
}

// ingressOptions are the cehttp options that make the ingress check what
// allow leaves to it: the signature and the body's digest.
func (n *authn) ingressOptions() []cehttp.Option {
	var o []cehttp.Option
	if n.verifier != nil {
		o = append(o, cehttp.WithVerifier(n.verifier))
	}
	if n.legacy != nil {
		o = append(o, cehttp.WithLegacyBodySignature(n.legacy))
	}
	return o
}

// allow answers 401 or 403 (problem+json) and returns false unless r's
// credentials grant scope. With signed is true, the signature is left to
// the handler (the ingress, which checks it with the body as it reads it).
func (n *authn) allow(w http.ResponseWriter, r *http.Request, scope string, signedLater bool) bool {
	if n.tokens != nil && !n.allowToken(w, r, scope) {
		return false
	}
	if n.verifier == nil {
		return true
	}
	if !slices.Contains(n.hmacScopes, scope) {
		deny(w, "the request signature's key does not grant the scope "+scope)
		return false
	}
	if signedLater {
		return true
	}
	if err := n.verifier.Verify(r); err != nil {
		writeErr(w, err)
		return false
	}
	return true
}

func (n *authn) allowToken(w http.ResponseWriter, r *http.Request, scope string) bool {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if tok == "" || !strings.EqualFold(scheme, "Bearer") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="eventkit"`)
		cehttp.WriteProblem(w, &cehttp.Problem{Type: problemBase + "unauthenticated", Status: http.StatusUnauthorized,
			Detail: "a bearer token is required"})
		return false
	}
	scopes, ok := n.tokens[sha256.Sum256([]byte(tok))]
	if !ok {
		deny(w, "the bearer token is not valid")
		return false
	}
	if !slices.Contains(scopes, scope) {
		deny(w, "the bearer token does not grant the scope "+scope)
		return false
	}
	return true
}

const problemBase = "https://eventkit.dev/problems/"

func deny(w http.ResponseWriter, detail string) {
	cehttp.WriteProblem(w, &cehttp.Problem{Type: problemBase + "forbidden", Status: http.StatusForbidden, Detail: detail})
}

// writeErr answers err's *cehttp.Problem, or 500.
func writeErr(w http.ResponseWriter, err error) {
	if p, ok := err.(*cehttp.Problem); ok {
		cp := *p
		cehttp.WriteProblem(w, &cp)
		return
	}
	cehttp.WriteProblem(w, &cehttp.Problem{Status: http.StatusInternalServerError, Detail: err.Error()})
}

// problem answers status with detail as problem+json.
func problem(w http.ResponseWriter, status int, detail string) {
	cehttp.WriteProblem(w, &cehttp.Problem{Status: status, Detail: detail})
}

// validScopes checks a list of scopes from the configuration.
func validScopes(where string, scopes []string) error {
	for _, s := range scopes {
		if !slices.Contains(AllScopes, s) {
			return fmt.Errorf("hub: config: %s: unknown scope %q (want %s)", where, s, strings.Join(AllScopes, ", "))
		}
	}
	return nil
}
