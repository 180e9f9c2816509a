package cehttp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// ErrTargetRefused is the error of a connection to an address that
// WithPublicTargetsOnly refuses.
var ErrTargetRefused = errors.New("cehttp: target address refused")

// ErrRedirect is the error of a 3xx answer the Publisher did not follow: a
// redirect is a failed delivery, never a success.
var ErrRedirect = errors.New("cehttp: redirect not followed")

// WithPublicTargetsOnly refuses to connect to loopback, link-local (cloud
// metadata services at 169.254.169.254 included), private (RFC 1918, fc00::/7,
// 100.64.0.0/10), unspecified and multicast addresses. The address is
// checked when the connection is made, after name resolution, so a name
// that resolves (or re-resolves) to such an address is refused too. It
// applies to the client the Publisher makes (not to one given by
// WithHTTPClient), which then uses no proxy.
func WithPublicTargetsOnly() PublisherOption {
	return func(p *poster) error { p.publicOnly = true; return nil }
}

// WithSameOriginRedirects follows 307 and 308 redirects to the same origin
// (scheme, host and port), at most 5, which repeat the request with its
// body and signature. By default no redirect is followed. A redirect to
// another origin, or a 301, 302 or 303 (which would turn the POST into a
// GET), is never followed: it fails the delivery with ErrRedirect.
func WithSameOriginRedirects() PublisherOption {
	return func(p *poster) error { p.sameOriginRedirects = true; return nil }
}

// refusedAddr reports why a is not a public unicast address ("" when it is).
func refusedAddr(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case a.IsLoopback():
		return "loopback"
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		return "link-local"
	case a.IsPrivate() || cgnat.Contains(a):
		return "private"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsMulticast() || a.IsInterfaceLocalMulticast():
		return "multicast"
	}
	return ""
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// CheckPublicTarget resolves the host of the URL rawURL and returns an
// error wrapping ErrTargetRefused when it, or any address it resolves to,
// is one WithPublicTargetsOnly refuses. It lets a URL be refused when it
// is configured (an API request, say); the connection is still checked
// when it is made, since a name can resolve differently later. A host
// that does not resolve is an error that does not wrap ErrTargetRefused.
func CheckPublicTarget(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("cehttp: target %q: %w", rawURL, err)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("cehttp: target %q has no host", rawURL)
	}
	addrs := []netip.Addr{}
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = append(addrs, a)
	} else if addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host); err != nil {
		return fmt.Errorf("cehttp: target %q: %w", rawURL, err)
	}
	for _, a := range addrs {
		if why := refusedAddr(a); why != "" {
			return fmt.Errorf("%w: %s resolves to %s, a %s address", ErrTargetRefused, host, a, why)
		}
	}
	return nil
}

// publicOnlyControl is a net.Dialer Control refusing non-public addresses.
func publicOnlyControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrTargetRefused, address, err)
	}
	if why := refusedAddr(ap.Addr()); why != "" {
		return fmt.Errorf("%w: %s is a %s address", ErrTargetRefused, ap.Addr(), why)
	}
	return nil
}

// newClient makes the Publisher's own client.
func (p *poster) newClient() *http.Client {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	t := http.DefaultTransport.(*http.Transport).Clone()
	if p.publicOnly {
		d.Control = publicOnlyControl
		t.Proxy = nil
	}
	t.DialContext = d.DialContext
	// A Publisher posts to one host: keep as many idle connections to it
	// as concurrent posts need (net/http keeps 2 by default, so a third
	// concurrent post opened a new connection each time).
	t.MaxIdleConnsPerHost = t.MaxIdleConns
	return &http.Client{Timeout: p.timeout, Transport: t, CheckRedirect: p.checkRedirect}
}

// checkRedirect follows only what WithSameOriginRedirects allows.
func (p *poster) checkRedirect(req *http.Request, via []*http.Request) error {
	first := via[0]
	code := req.Response.StatusCode
	switch {
	case !p.sameOriginRedirects:
		return fmt.Errorf("%w: %d to %s", ErrRedirect, code, req.URL.Redacted())
	case code != http.StatusTemporaryRedirect && code != http.StatusPermanentRedirect:
		return fmt.Errorf("%w: %d would change the method", ErrRedirect, code)
	case req.URL.Scheme != first.URL.Scheme || req.URL.Host != first.URL.Host:
		return fmt.Errorf("%w: %d to another origin, %s", ErrRedirect, code, req.URL.Redacted())
	case len(via) > 5:
		return fmt.Errorf("%w: more than 5 redirects", ErrRedirect)
	}
	return nil
}
