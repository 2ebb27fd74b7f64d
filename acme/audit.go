package acme

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// Audit events of the order flow, next to the account events of
// account.go and the issuance and revocation events the ca package
// writes itself:
//
//	acme.order.create        object acme-order:{id}
//	acme.order.finalize      object acme-order:{id}; outcome ok or error
//	acme.challenge.validate  object acme-challenge:{id}; outcome ok or denied
//
// An audit failure is logged, not returned: the state change it
// describes has already been committed.
func (s *Server) audit(ctx context.Context, ev inventory.Event, details any) {
	if details != nil {
		ev.Details, _ = json.Marshal(details)
	}
	ev.Protocol = "acme"
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := s.store.AppendEvent(ctx, ev); err != nil {
		s.log.Error("acme: writing an audit event", "action", ev.Action, "object", ev.Object, "err", err)
	}
}

// accountActor names an account in events written without a request,
// where its URL is unknown.
func accountActor(url, id string) string {
	if url != "" {
		return url
	}
	return "acme-account:" + id
}

// DenialRecorder counts an unauthenticated refusal without writing an
// audit event for it (inventory/denials.Summariser, which writes one
// summary per source and window). Record must not block: it is called on
// the request path of every refused request.
type DenialRecorder interface {
	Record(protocol, source, kind string)
}

// deniedJWS counts a request whose JWS did not verify (verify's failure
// path); p nil means it verified. A stale nonce is ordinary client behaviour (clients retry with
// the fresh one) and a 5xx is ours, so neither is counted. The kind is
// the problem type's short name: a fixed vocabulary, never client input.
func (s *Server) deniedJWS(r *http.Request, p *Problem) {
	if p == nil || s.opts.Denials == nil || p.Type == probBadNonce || p.Status >= 500 {
		return
	}
	s.opts.Denials.Record("acme", remoteIP(r), "acme.jws."+strings.TrimPrefix(p.Type, errNS))
}
