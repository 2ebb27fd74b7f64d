package acme

import (
	"context"
	"encoding/json"
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
