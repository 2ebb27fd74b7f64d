// Package acmeload is MICA's own ACME load client for benchmarks: N
// concurrent clients, one account each (created once and reused), each
// running full orders (newOrder → authorization → http-01 → finalize →
// poll → download) for a fixed time, with the latency of every order
// recorded. It brings what the CA under test needs to validate on
// loopback: a DNS server that answers A 127.0.0.1 for every name and an
// http-01 responder.
//
// It serves scripts/bench-acme.sh (through cmd/acmeload) and is never
// imported by the production packages. It measures; it never fails a
// build on a number.
package acmeload
