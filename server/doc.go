// Package server runs MICA's two HTTP listeners: HTTPS for the protocol
// front ends (ACME, EST, web UI and API) and plain HTTP for what relying
// parties fetch without TLS (CRLs, OCSP, the AIA caIssuers certificates).
//
// It owns only what every route shares: TLS settings (TLS 1.2 or later, the
// server certificate from a callback so it can be renewed while serving,
// optional client certificates for EST), request logging, a request body
// cap, panic recovery, Prometheus metrics, /healthz, /metrics and
// /ca/{issuer}.crt, and graceful shutdown when its context ends.
//
// # Seams
//
// Front ends add routes through [Mounter]: cmd/mica passes one per front end
// in [Options.Mount], and each gets the HTTPS router and the plain router to
// register on. The server never imports acme, enroll or web and does not
// know their paths.
//
// # What it must never do
//
//   - log request or response bodies, query strings or any header (an
//     Authorization header carries EST passwords and ACME-adjacent tokens);
//   - show a panic, a stack or an internal error to a client;
//   - sign anything or touch key material: the TLS certificate arrives as a
//     [tls.Certificate] built by ca, whose private key is a throw-away
//     listener key, never a CA key.
package server
