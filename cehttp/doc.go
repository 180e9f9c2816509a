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
// require a bearer token and an HMAC-SHA256 signature of the body.
//
// Publisher is the egress: an eventkit.Publisher that posts events to a
// webhook URL in binary (default), structured or batch mode and counts only
// a 2xx answer as success.
//
// Header values are percent-encoded and decoded as the binding prescribes,
// with package binding.
package cehttp
