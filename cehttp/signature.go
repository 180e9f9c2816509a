package cehttp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HTTP Message Signatures (RFC 9421) with hmac-sha256, over a Content-Digest
// (RFC 9530) of the body.
//
// A signed request carries three headers:
//
//	Content-Digest:  sha-256=:<base64 SHA-256 of the body>:
//	Signature-Input: eventkit=("@method" "@path" "content-type" "content-digest" "ce-id" …);created=…;nonce="…";keyid="…";alg="hmac-sha256"
//	Signature:       eventkit=:<base64 HMAC-SHA256 of the signature base>:
//
// The signature base is one line per covered component, `"name": value`,
// and a last line `"@signature-params": (…);created=…` (RFC 9421 §2.5).
const (
	// SignatureInputHeader names the covered components and the signature
	// parameters (RFC 9421 §4.1).
	SignatureInputHeader = "Signature-Input"
	// SignatureValueHeader carries the signature itself (RFC 9421 §4.2).
	SignatureValueHeader = "Signature"
	// ContentDigestHeader carries the SHA-256 of the body (RFC 9530).
	ContentDigestHeader = "Content-Digest"

	signatureLabel = "eventkit"
	signatureAlg   = "hmac-sha256"
	// DefaultClockSkew bounds how far a signature's created time may be
	// from the verifier's clock.
	DefaultClockSkew = time.Minute
	// DefaultReplayCacheSize bounds the nonces a Verifier remembers; when
	// full, new signatures are refused with 503 rather than forgetting a
	// nonce that could then be replayed.
	DefaultReplayCacheSize = 1 << 20
)

// SignRequest signs r with HMAC-SHA256 under secret, as RFC 9421 describes:
// it sets Content-Digest to the SHA-256 of body (when r has a body or is a
// POST), then Signature-Input and Signature over the method, the path, the
// query (when there is one), Content-Type, Content-Digest, Eventkit-Topic and
// every ce- header, with a creation time and a random nonce. Set every
// header to cover before calling it. keyID names the key to the verifier
// (it may be empty).
func SignRequest(r *http.Request, body []byte, keyID string, secret []byte) error {
	return signRequestAt(r, body, keyID, secret, time.Now())
}

func signRequestAt(r *http.Request, body []byte, keyID string, secret []byte, created time.Time) error {
	if body != nil || r.Method == http.MethodPost {
		sum := sha256.Sum256(body)
		r.Header.Set(ContentDigestHeader, "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":")
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return err
	}
	p := sigParams{
		components: requiredComponents(r),
		created:    created.Unix(),
		nonce:      base64.RawURLEncoding.EncodeToString(nonce[:]),
		keyID:      keyID,
		alg:        signatureAlg,
	}
	params := p.serialize()
	base, err := signatureBase(r, p.components, params)
	if err != nil {
		return err
	}
	r.Header.Set(SignatureInputHeader, signatureLabel+"="+params)
	r.Header.Set(SignatureValueHeader, signatureLabel+"=:"+base64.StdEncoding.EncodeToString(hmacSum(secret, base))+":")
	return nil
}

// requiredComponents lists what a signature of r must cover: the method,
// the path, the query when there is one, the body's digest when there is a
// body, and the headers that make the event (Content-Type, Eventkit-Topic,
// every ce- header).
func requiredComponents(r *http.Request) []string {
	c := []string{"@method", "@path"}
	if r.URL.RawQuery != "" {
		c = append(c, "@query")
	}
	if r.Header.Get("Content-Type") != "" {
		c = append(c, "content-type")
	}
	if r.Header.Get(ContentDigestHeader) != "" || r.ContentLength != 0 && r.Method != http.MethodGet && r.Method != http.MethodHead {
		c = append(c, "content-digest")
	}
	if r.Header.Get(TopicHeader) != "" {
		c = append(c, strings.ToLower(TopicHeader))
	}
	var ce []string
	for k := range r.Header {
		if len(k) > 3 && strings.EqualFold(k[:3], "ce-") {
			ce = append(ce, strings.ToLower(k))
		}
	}
	slices.Sort(ce)
	return append(c, ce...)
}

func hmacSum(secret []byte, base string) []byte {
	m := hmac.New(sha256.New, secret)
	io.WriteString(m, base)
	return m.Sum(nil)
}

// signatureBase builds the RFC 9421 signature base of r over components.
func signatureBase(r *http.Request, components []string, params string) (string, error) {
	var b strings.Builder
	b.Grow(256 + len(params))
	for _, c := range components {
		v, err := componentValue(r, c)
		if err != nil {
			return "", err
		}
		b.WriteByte('"')
		b.WriteString(c)
		b.WriteString(`": `)
		b.WriteString(v)
		b.WriteByte('\n')
	}
	b.WriteString(`"@signature-params": `)
	b.WriteString(params)
	return b.String(), nil
}

var errSigMissingComponent = errors.New("a covered component is absent from the request")

// componentValue is the value of one covered component (RFC 9421 §2.1,
// §2.2): a derived component, or a header's values trimmed and joined.
func componentValue(r *http.Request, c string) (string, error) {
	switch c {
	case "@method":
		return r.Method, nil
	case "@path":
		if p := r.URL.EscapedPath(); p != "" {
			return p, nil
		}
		return "/", nil
	case "@query":
		return "?" + r.URL.RawQuery, nil
	case "@authority":
		return strings.ToLower(r.Host), nil
	}
	if strings.HasPrefix(c, "@") || c != strings.ToLower(c) {
		return "", errors.New("unsupported component " + strconv.Quote(c))
	}
	vs := r.Header.Values(c)
	switch len(vs) {
	case 0:
		return "", errSigMissingComponent
	case 1:
		return strings.Trim(vs[0], " \t"), nil
	}
	trimmed := make([]string, len(vs))
	for i, v := range vs {
		trimmed[i] = strings.Trim(v, " \t")
	}
	return strings.Join(trimmed, ", "), nil
}

// sigParams are the signature parameters of a Signature-Input member.
type sigParams struct {
	components []string
	created    int64
	expires    int64
	nonce      string
	keyID      string
	alg        string
	order      []string // parameter names in the order received
}

// serialize writes the inner list and its parameters as RFC 8941 does.
func (p sigParams) serialize() string {
	var b strings.Builder
	b.Grow(160)
	b.WriteByte('(')
	for i, c := range p.components {
		if i > 0 {
			b.WriteByte(' ')
		}
		writeSFString(&b, c)
	}
	b.WriteByte(')')
	order := p.order
	if order == nil {
		order = []string{"created", "nonce", "keyid", "alg"}
	}
	for _, name := range order {
		switch name {
		case "created":
			b.WriteString(";created=" + strconv.FormatInt(p.created, 10))
		case "expires":
			b.WriteString(";expires=" + strconv.FormatInt(p.expires, 10))
		case "nonce":
			b.WriteString(";nonce=")
			writeSFString(&b, p.nonce)
		case "keyid":
			b.WriteString(";keyid=")
			writeSFString(&b, p.keyID)
		case "alg":
			b.WriteString(";alg=")
			writeSFString(&b, p.alg)
		}
	}
	return b.String()
}

// sfEscaper escapes an RFC 8941 string's backslashes and quotes.
var sfEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// writeSFString writes s as an RFC 8941 string.
func writeSFString(b *strings.Builder, s string) {
	b.WriteByte('"')
	if strings.ContainsAny(s, `\"`) {
		_, _ = sfEscaper.WriteString(b, s)
	} else {
		b.WriteString(s)
	}
	b.WriteByte('"')
}

// sfParser reads the subset of RFC 8941 structured fields that signatures
// use: dictionaries of inner lists of strings with parameters, and of byte
// sequences.
type sfParser struct {
	s string
	i int
}

var errSF = errors.New("malformed structured field")

func (p *sfParser) ows() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *sfParser) key() (string, error) {
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*' {
			p.i++
			continue
		}
		break
	}
	if p.i == start || p.s[start] < 'a' && p.s[start] != '*' {
		return "", errSF
	}
	return p.s[start:p.i], nil
}

func (p *sfParser) str() (string, error) {
	if p.i >= len(p.s) || p.s[p.i] != '"' {
		return "", errSF
	}
	p.i++
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\\':
			if p.i >= len(p.s) || p.s[p.i] != '"' && p.s[p.i] != '\\' {
				return "", errSF
			}
			b.WriteByte(p.s[p.i])
			p.i++
		case c == '"':
			return b.String(), nil
		case c < 0x20 || c > 0x7e:
			return "", errSF
		default:
			b.WriteByte(c)
		}
	}
	return "", errSF
}

func (p *sfParser) bytes() ([]byte, error) {
	if p.i >= len(p.s) || p.s[p.i] != ':' {
		return nil, errSF
	}
	end := strings.IndexByte(p.s[p.i+1:], ':')
	if end < 0 {
		return nil, errSF
	}
	b, err := base64.StdEncoding.DecodeString(p.s[p.i+1 : p.i+1+end])
	p.i += end + 2
	return b, err
}

func (p *sfParser) integer() (int64, error) {
	start := p.i
	if p.i < len(p.s) && p.s[p.i] == '-' {
		p.i++
	}
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	if p.i-start > 15 {
		return 0, errSF
	}
	return strconv.ParseInt(p.s[start:p.i], 10, 64)
}

// next ends a dictionary member: the end of the field or a comma.
func (p *sfParser) next() (more bool, err error) {
	p.ows()
	if p.i == len(p.s) {
		return false, nil
	}
	if p.s[p.i] != ',' {
		return false, errSF
	}
	p.i++
	p.ows()
	if p.i == len(p.s) {
		return false, errSF
	}
	return true, nil
}

// dict reads a dictionary, label=value, …; value reads each member's value.
func (p *sfParser) dict(value func(label string) error) error {
	for more := p.i < len(p.s); more; {
		label, err := p.key()
		if err != nil || p.i >= len(p.s) || p.s[p.i] != '=' {
			return errSF
		}
		p.i++
		if err := value(label); err != nil {
			return err
		}
		if more, err = p.next(); err != nil {
			return err
		}
	}
	return nil
}

// parseSignatureInput returns the members of a Signature-Input field.
func parseSignatureInput(v string) (map[string]sigParams, error) {
	out := map[string]sigParams{}
	p := &sfParser{s: strings.Trim(v, " ")}
	err := p.dict(func(label string) error {
		sp, err := p.params()
		out[label] = sp
		return err
	})
	return out, err
}

// params reads `("a" "b");name=value…`.
func (p *sfParser) params() (sigParams, error) {
	var sp sigParams
	if p.i >= len(p.s) || p.s[p.i] != '(' {
		return sp, errSF
	}
	p.i++
	for {
		for p.i < len(p.s) && p.s[p.i] == ' ' {
			p.i++
		}
		if p.i < len(p.s) && p.s[p.i] == ')' {
			p.i++
			break
		}
		c, err := p.str()
		if err != nil {
			return sp, err // component parameters (;sf, ;req…) are not supported
		}
		sp.components = append(sp.components, c)
	}
	for p.i < len(p.s) && p.s[p.i] == ';' {
		p.i++
		name, err := p.key()
		if err != nil || p.i >= len(p.s) || p.s[p.i] != '=' || slices.Contains(sp.order, name) {
			return sp, errSF
		}
		p.i++
		sp.order = append(sp.order, name)
		switch name {
		case "created":
			sp.created, err = p.integer()
		case "expires":
			sp.expires, err = p.integer()
		case "nonce":
			sp.nonce, err = p.str()
		case "keyid":
			sp.keyID, err = p.str()
		case "alg":
			sp.alg, err = p.str()
		default:
			return sp, errors.New("unsupported signature parameter " + strconv.Quote(name))
		}
		if err != nil {
			return sp, err
		}
	}
	return sp, nil
}

// parseByteDict returns the byte-sequence members of a dictionary field
// (Signature, Content-Digest).
func parseByteDict(v string) (map[string][]byte, error) {
	out := map[string][]byte{}
	p := &sfParser{s: strings.Trim(v, " ")}
	err := p.dict(func(label string) error {
		b, err := p.bytes()
		if err != nil {
			return errSF
		}
		out[label] = b
		return nil
	})
	return out, err
}

// VerifierOption configures a Verifier.
type VerifierOption func(*Verifier)

// WithClockSkew bounds how far a signature's created time may be from the
// verifier's clock (DefaultClockSkew by default).
func WithClockSkew(d time.Duration) VerifierOption {
	return func(v *Verifier) {
		if d > 0 {
			v.skew = d
		}
	}
}

// WithReplayCacheSize bounds the nonces remembered
// (DefaultReplayCacheSize by default).
func WithReplayCacheSize(n int) VerifierOption {
	return func(v *Verifier) {
		if n > 0 {
			v.max = n
		}
	}
}

// WithVerifierClock sets the clock of a Verifier (for tests).
func WithVerifierClock(now func() time.Time) VerifierOption {
	return func(v *Verifier) { v.now = now }
}

// Verifier checks RFC 9421 hmac-sha256 request signatures made by
// SignRequest (or by any implementation of the RFC covering the same
// components). A signature is accepted only if it covers what
// requiredComponents names for the request (method, path, query, content
// type, Content-Digest, Eventkit-Topic and every ce- header), its created
// time is within the clock skew, and its nonce was not seen before: a
// captured request can be neither altered nor replayed. The body is
// checked against Content-Digest as it is read. A Verifier is safe for
// concurrent use; share one between the routes of a server, so that a
// nonce is refused on all of them once used.
type Verifier struct {
	secret []byte
	skew   time.Duration
	max    int
	now    func() time.Time

	mu    sync.Mutex
	seen  map[[16]byte]struct{}
	queue []nonceEntry // in order of insertion, for expiry
}

type nonceEntry struct {
	key     [16]byte
	expires time.Time
}

// NewVerifier returns a Verifier of signatures under secret.
func NewVerifier(secret []byte, opts ...VerifierOption) *Verifier {
	v := &Verifier{secret: append([]byte(nil), secret...), skew: DefaultClockSkew, max: DefaultReplayCacheSize,
		now: time.Now, seen: map[[16]byte]struct{}{}}
	for _, o := range opts {
		o(v)
	}
	return v
}

// Signed reports whether r carries an RFC 9421 signature.
func Signed(r *http.Request) bool { return r.Header.Get(SignatureInputHeader) != "" }

// Verify checks the signature of r's headers before its body is read, and
// wraps r.Body so that the body is checked against the signed
// Content-Digest as it is read (see CheckBody). It returns a *Problem: 401
// without a signature, 403 when it does not verify, covers too little, is
// out of the clock skew or replayed, 503 when the replay cache is full.
func (v *Verifier) Verify(r *http.Request) error {
	in, sig := r.Header.Get(SignatureInputHeader), r.Header.Get(SignatureValueHeader)
	if in == "" || sig == "" {
		return &Problem{Type: problemBase + "unauthenticated", Status: http.StatusUnauthorized,
			Detail: "a request signature (" + SignatureInputHeader + " and " + SignatureValueHeader + ", RFC 9421) is required"}
	}
	inputs, err1 := parseSignatureInput(in)
	sigs, err2 := parseByteDict(sig)
	if err := errors.Join(err1, err2); err != nil {
		return forbidden("malformed signature headers: " + err.Error())
	}
	required := requiredComponents(r)
	var last error = forbidden("no signature label in both " + SignatureInputHeader + " and " + SignatureValueHeader)
	for label, p := range inputs {
		s, ok := sigs[label]
		if !ok {
			continue
		}
		if last = v.verifyOne(r, p, s, required); last == nil {
			return v.wrapBody(r)
		}
	}
	return last
}

func forbidden(detail string) *Problem {
	return &Problem{Type: problemBase + "bad-signature", Title: "Signature not accepted", Status: http.StatusForbidden, Detail: detail}
}

func (v *Verifier) verifyOne(r *http.Request, p sigParams, sig []byte, required []string) error {
	for _, c := range required {
		if !slices.Contains(p.components, c) {
			return forbidden("the signature does not cover " + strconv.Quote(c))
		}
	}
	if p.alg != "" && p.alg != signatureAlg {
		return forbidden("signature algorithm " + strconv.Quote(p.alg) + " (want " + signatureAlg + ")")
	}
	if !slices.Contains(p.order, "created") || p.nonce == "" {
		return forbidden("the signature needs created and nonce parameters")
	}
	now := v.now()
	created := time.Unix(p.created, 0)
	if d := now.Sub(created); d > v.skew || d < -v.skew {
		return forbidden("the signature was created at " + created.UTC().Format(time.RFC3339) + ", beyond the allowed clock skew of " + v.skew.String())
	}
	if slices.Contains(p.order, "expires") && !now.Before(time.Unix(p.expires, 0)) {
		return forbidden("the signature has expired")
	}
	base, err := signatureBase(r, p.components, p.serialize())
	if err != nil {
		return forbidden("signature base: " + err.Error())
	}
	if !hmac.Equal(sig, hmacSum(v.secret, base)) {
		return forbidden("the signature does not match")
	}
	return v.remember(p, now)
}

// remember records the nonce of a verified signature, refusing a nonce
// already seen. A nonce is kept until its signature's created time is out
// of the skew (after which the signature is refused anyway).
func (v *Verifier) remember(p sigParams, now time.Time) error {
	h := sha256.Sum256([]byte(p.keyID + "\x00" + p.nonce))
	var key [16]byte
	copy(key[:], h[:])
	v.mu.Lock()
	defer v.mu.Unlock()
	for len(v.queue) > 0 && now.After(v.queue[0].expires) {
		delete(v.seen, v.queue[0].key)
		v.queue[0] = nonceEntry{}
		v.queue = v.queue[1:]
	}
	if _, dup := v.seen[key]; dup {
		return forbidden("the signature's nonce was already used (replayed request)")
	}
	if len(v.seen) >= v.max {
		return &Problem{Type: problemBase + "busy", Status: http.StatusServiceUnavailable,
			Detail: "too many signatures within the clock skew; retry later"}
	}
	v.seen[key] = struct{}{}
	// Beyond created + skew the signature is refused anyway. The queue is
	// in arrival order, so an entry may outlive its expiry until those
	// before it expire (by at most twice the skew): never the reverse.
	v.queue = append(v.queue, nonceEntry{key: key, expires: time.Unix(p.created, 0).Add(v.skew)})
	return nil
}

// Nonces returns the number of nonces remembered.
func (v *Verifier) Nonces() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.seen)
}

// wrapBody replaces r.Body by one that hashes what is read, to compare
// with Content-Digest at its end.
func (v *Verifier) wrapBody(r *http.Request) error {
	cd := r.Header.Get(ContentDigestHeader)
	if cd == "" {
		return nil
	}
	d, err := parseByteDict(cd)
	want, ok := d["sha-256"]
	if err != nil || !ok || len(want) != sha256.Size {
		return &Problem{Type: problemBase + "bad-digest", Status: http.StatusBadRequest,
			Detail: ContentDigestHeader + " must hold a sha-256 byte sequence (RFC 9530)"}
	}
	r.Body = &digestBody{rc: r.Body, h: sha256.New(), want: want}
	return nil
}

// digestBody hashes a body as it is read and compares the digest at its
// end.
type digestBody struct {
	rc   io.ReadCloser
	h    hash.Hash
	want []byte
	done bool
	err  error
}

// errDigest is the error of a body that does not match its Content-Digest.
var errDigest = forbidden("the body does not match the signed " + ContentDigestHeader)

func (d *digestBody) Read(p []byte) (int, error) {
	n, err := d.rc.Read(p)
	d.h.Write(p[:n])
	if err == io.EOF {
		if cerr := d.check(); cerr != nil {
			return n, cerr
		}
	}
	return n, err
}

func (d *digestBody) check() error {
	if !d.done {
		d.done = true
		if !hmac.Equal(d.h.Sum(nil), d.want) {
			d.err = errDigest
		}
	}
	return d.err
}

func (d *digestBody) Close() error { return d.rc.Close() }

// CheckBody returns the error of a body read whole that does not match
// the Content-Digest signed for it (nil when r was not verified by a
// Verifier, or its body matched). Call it once the body is read.
func CheckBody(r *http.Request) error {
	if d, ok := r.Body.(*digestBody); ok {
		return d.check()
	}
	return nil
}
