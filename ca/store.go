package ca

import (
	"context"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// The store interfaces below are the part of the inventory that the CA
// needs, defined here so that ca depends on behaviour, not on a database.
// *inventory.Store satisfies all of them.
//
// Contract shared by every method:
//
//   - Safe for concurrent use by many goroutines (and, for the SQL stores,
//     by many processes on one database).
//   - Honours ctx: a cancelled context aborts the call and rolls back any
//     write it had started.
//   - Errors wrap inventory.ErrNotFound when the named row does not exist,
//     inventory.ErrDuplicate when a unique key (issuer ID, issuer+serial) is
//     taken, and inventory.ErrConflict when a state transition is not allowed
//     (revoking a revoked certificate, completing one that is not
//     requested). Anything else is an infrastructure failure.
//   - A method that takes an Event writes the event in the same transaction
//     as the change it describes: either both are stored or neither is.
//   - Serials are lower-case hex without colons or leading zeros.

// IssuerStore holds the CA certificates (roots and intermediates).
type IssuerStore interface {
	// PutIssuer inserts a new issuer; ErrDuplicate if its ID exists.
	PutIssuer(ctx context.Context, iss *inventory.Issuer, ev inventory.Event) error
	// Issuers lists every issuer, DER included.
	Issuers(ctx context.Context) ([]inventory.Issuer, error)
}

// CertStore holds end-entity certificates through their lifecycle.
type CertStore interface {
	// ReserveCertificate inserts c in state requested. ErrDuplicate if the
	// issuer already has a certificate (in any state) with c.Serial. On
	// success it may fill c.ID, c.CreatedAt and c.UpdatedAt.
	ReserveCertificate(ctx context.Context, c *inventory.Certificate) error
	// CompleteCertificate moves a requested certificate to issued, storing
	// its DER and fingerprint, together with ev. ErrNotFound if there is no
	// such reservation, ErrConflict if it is not in state requested.
	CompleteCertificate(ctx context.Context, issuerID, serial string, der []byte, fingerprint string, ev inventory.Event) error
	// FailCertificate moves a requested certificate to failed, with ev.
	FailCertificate(ctx context.Context, issuerID, serial string, ev inventory.Event) error
	// Certificate returns one certificate; ErrNotFound if absent.
	Certificate(ctx context.Context, issuerID, serial string) (*inventory.Certificate, error)
	// FindCertificates returns the certificates matching f, newest first.
	FindCertificates(ctx context.Context, f inventory.CertFilter) ([]inventory.Certificate, error)
	// RevokeCertificate marks an issued certificate revoked with the given
	// RFC 5280 reason name and time, with ev, and returns the updated row.
	// ErrNotFound if absent, ErrConflict if it is already revoked or was
	// never issued.
	RevokeCertificate(ctx context.Context, issuerID, serial, reason string, at time.Time, ev inventory.Event) (*inventory.Certificate, error)
}

// EventStore is the append-only audit log, for events that do not go with
// a state change (refused requests).
type EventStore interface {
	AppendEvent(ctx context.Context, ev inventory.Event) (inventory.Event, error)
}

// Store is everything the CA engine uses.
type Store interface {
	IssuerStore
	CertStore
	EventStore
}

// InitStore is what [Init] needs: reading and adding issuers.
type InitStore interface {
	IssuerStore
}
