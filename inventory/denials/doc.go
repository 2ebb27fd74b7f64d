// Package denials keeps unauthenticated refusals from flooding the audit
// log. A bad bearer token at the admin API, bad EST credentials, a JWS
// that does not verify at ACME and a login refused because its address is
// throttled are each counted in memory, per protocol and source address,
// and written as one "auth.denied.summary" event per protocol, source and
// window (default one minute) by a flush loop, never on the request path.
//
// # Why it is bounded
//
// Each replica summarises only the denials it answered itself; nothing is
// shared between replicas, so recording needs no database round trip and
// no lock beyond one in-process mutex. Within a window a replica tracks at
// most MaxSources (protocol, source) pairs; the denials of further sources
// are added to one bucket whose source is "other". The audit log therefore
// gains at most replicas × (MaxSources + protocols) events per window,
// whatever the request rate: 10,000 bad requests from one address in a
// minute are one event carrying count 10,000.
//
// # Immediacy
//
// The first denial of a source is not written immediately: an operator
// sees it at most one window later, the auth_failures alert reads the
// summaries' counts (inventory.Store.DeniedBySource), and writing the
// first one at once would double the bound for nothing an alert needs.
// Failed UI password checks (ui.login) are not summarised at all: they are
// already bounded per source by the login throttle, and the throttle and
// the per-account lock read them one by one.
//
// # What it must never do
//
// Record must never block on the database or grow without bound, and a
// summary must never carry credentials: only the kind of denial (a fixed
// vocabulary chosen by the caller), counts, times and the source address.
// A flush that cannot write logs the summary it drops, counts included.
package denials
