// Package cehttp is the CloudEvents HTTP protocol binding for eventkit, on
// net/http.
//
// Handler is the ingress: an http.Handler that accepts events in binary mode
// (attributes in ce- headers, the body as data, Content-Type as
// datacontenttype), structured mode (application/cloudevents+json) and batch
// mode (application/cloudevents-batch+json), decodes them strictly, and
// hands them to an eventkit.Publisher. It answers 2xx only after the
// publisher confirmed every event of the request; a malformed request gets a
// 400 application/problem+json answer naming the bad attribute, and nothing
// of it is published. The handler also answers the CloudEvents Web Hook
// abuse-protection handshake (OPTIONS with WebHook-Request-Origin) and can
// require a bearer token and a request signature: RFC 9421 HTTP Message
// Signatures with hmac-sha256 over the method, path, query, content type,
// every ce- header and the body's RFC 9530 Content-Digest, with a creation
// time within a clock skew and a nonce never seen before (Verifier,
// SignRequest), so that a captured request can be neither altered nor
// replayed. The headers are verified before the body is read; the body is
// checked against its digest as it is read, before anything is decoded.
// Control characters and bytes that are not UTF-8 in attributes are refused
// in every mode.
//
// Publisher is the egress: an eventkit.Publisher that posts events to a
// webhook URL in binary (default), structured or batch mode and counts only
// a 2xx answer as success. It follows no redirect unless told to (and then
// only 307/308 to the same origin), can refuse non-public target addresses
// at connect time (WithPublicTargetsOnly), and signs requests as the
// Handler verifies them (WithSigningSecret).
//
// Header values are percent-encoded and decoded as the binding prescribes,
// with package binding.
package cehttp
