package inventory

import (
	"encoding/json"
	"errors"
	"time"
)

// State is a certificate's stored lifecycle state. "expired" is not stored:
// it is derived from NotAfter at read time (see Certificate.EffectiveState),
// so no sweeper can fall behind.
type State string

const (
	// StateRequested: serial reserved and template recorded, not yet signed
	// (or signing failed or crashed). Never returned to a client.
	StateRequested State = "requested"
	StateIssued    State = "issued"
	StateRevoked   State = "revoked"
	// StateSuperseded: replaced by a renewal (SupersededBy names it).
	StateSuperseded State = "superseded"
	// StateFailed: the reservation was abandoned (signing failed).
	StateFailed State = "failed"
	// StateExpired is derived only; filters accept it.
	StateExpired State = "expired"
)

// Issuer is a CA certificate MICA holds: a root or an issuing intermediate.
type Issuer struct {
	ID        string    `db:"id" json:"id"` // short stable name used in URLs (/crl/{id}.crl)
	ParentID  string    `db:"parent_id" json:"parent_id,omitempty"`
	IsRoot    bool      `db:"is_root" json:"is_root"`
	Subject   string    `db:"subject" json:"subject"`
	KeyURI    string    `db:"key_uri" json:"key_uri"` // empty when the key is offline
	KeyType   string    `db:"key_type" json:"key_type"`
	SKI       string    `db:"ski" json:"ski"` // hex
	NotBefore time.Time `db:"not_before" json:"not_before"`
	NotAfter  time.Time `db:"not_after" json:"not_after"`
	Status    string    `db:"status" json:"status"` // active, retired
	DER       []byte    `db:"der" json:"-"`
	CreatedAt time.Time `db:"created_at" json:"created_at"`
}

// Certificate is one end-entity certificate issued by (or reserved at) MICA.
type Certificate struct {
	ID               int64      `db:"id" json:"id"`
	IssuerID         string     `db:"issuer_id" json:"issuer_id"`
	Serial           string     `db:"serial" json:"serial"` // lower-case hex, no colons, no leading zeros
	Subject          string     `db:"subject" json:"subject"`
	CommonName       string     `db:"common_name" json:"common_name"`
	SANs             []string   `db:"-" json:"sans"` // "dns:a.test", "ip:10.0.0.1", "uri:spiffe://…", "email:a@b"
	NotBefore        time.Time  `db:"not_before" json:"not_before"`
	NotAfter         time.Time  `db:"not_after" json:"not_after"`
	PublicKeySHA256  string     `db:"pubkey_sha256" json:"pubkey_sha256"` // hex SHA-256 of SubjectPublicKeyInfo
	KeyType          string     `db:"key_type" json:"key_type"`           // hsm.KeyType string, e.g. EC-P256
	Profile          string     `db:"profile" json:"profile"`
	Requester        string     `db:"requester" json:"requester"` // identity that asked: cli user, ACME account URL, EST user …
	Protocol         string     `db:"protocol" json:"protocol"`   // cli, acme, est, api, server
	State            State      `db:"state" json:"state"`
	RevocationReason string     `db:"revocation_reason" json:"revocation_reason,omitempty"` // RFC 5280 name, e.g. keyCompromise
	RevokedAt        *time.Time `db:"revoked_at" json:"revoked_at,omitempty"`
	SupersededBy     string     `db:"superseded_by" json:"superseded_by,omitempty"` // serial of the renewal
	Predecessor      string     `db:"predecessor" json:"predecessor,omitempty"`     // serial this one renews
	// PredecessorIssuerID is the issuer of Predecessor when it differs from
	// IssuerID (a renewal across a CA rotation); empty means IssuerID.
	PredecessorIssuerID string    `db:"predecessor_issuer_id" json:"predecessor_issuer_id,omitempty"`
	FingerprintSHA256   string    `db:"fingerprint_sha256" json:"fingerprint_sha256,omitempty"` // hex SHA-256 of DER, set when issued
	DER                 []byte    `db:"der" json:"-"`
	CreatedAt           time.Time `db:"created_at" json:"created_at"`
	UpdatedAt           time.Time `db:"updated_at" json:"updated_at"`
	// Labels (owner, team, tags, key strength) are loaded by Store.Search
	// and Store.CertificateDetail only; see labels.go.
	Labels *Labels `db:"-" json:"labels,omitempty"`
}

// EffectiveState is State with expiry derived from now.
func (c *Certificate) EffectiveState(now time.Time) State {
	if c.State == StateIssued && !now.Before(c.NotAfter) {
		return StateExpired
	}
	return c.State
}

// CertFilter selects certificates. Zero fields do not filter. Results are
// ordered by ID descending (newest first) and paged by keyset: pass the last
// ID seen as Before.
type CertFilter struct {
	IssuerID string
	Serial   string // normalised hex
	// Serials, when non-empty, keeps only these serials (any spelling; at
	// most 1000, so an incident's file of serials is queried in chunks).
	Serials         []string
	Text            string // substring of common name, subject, SANs, serial, fingerprint
	States          []State
	Profile         string
	Protocol        string
	PublicKeySHA256 string
	Requester       string    // exact
	ExpiresAfter    time.Time // only not_after >= ExpiresAfter
	ExpiresBefore   time.Time // only not_after < ExpiresBefore ("expiring soon": States {issued} + ExpiresBefore now+30d)
	Now             time.Time // for StateExpired / StateIssued derivation; zero means time.Now()
	Before          int64     // keyset cursor: only IDs < Before
	Limit           int       // 0 means 100; capped at 1000
}

// Event is one entry of the append-only audit log. The log is a hash chain:
// Hash = SHA-256(PrevHash ‖ canonical encoding of the event), so removing or
// editing a row is detectable (Store.VerifyEvents).
type Event struct {
	ID       int64           `db:"id" json:"id"`
	Time     time.Time       `db:"at" json:"time"`
	Actor    string          `db:"actor" json:"actor"`       // who: user, account, device, "system"
	Action   string          `db:"action" json:"action"`     // what: cert.issue, cert.revoke, key.sign, ca.init, …
	Protocol string          `db:"protocol" json:"protocol"` // cli, acme, est, api, ui, system
	Source   string          `db:"source" json:"source"`     // from where: remote address, hostname
	Object   string          `db:"object" json:"object"`     // what it acted on: "cert:{issuer}/{serial}", "issuer:{id}"
	Outcome  string          `db:"outcome" json:"outcome"`   // ok, denied, error
	Details  json.RawMessage `db:"details" json:"details,omitempty"`
	PrevHash string          `db:"prev_hash" json:"prev_hash"`
	Hash     string          `db:"hash" json:"hash"`
}

// EventFilter selects audit events, newest first, keyset-paged like CertFilter.
type EventFilter struct {
	Action string // exact, or prefix ending in "." (e.g. "cert.")
	Actor  string
	Object string
	Since  time.Time
	Before int64
	Limit  int
}

// Errors returned by the store; test with errors.Is.
var (
	ErrNotFound  = errors.New("inventory: not found")
	ErrDuplicate = errors.New("inventory: duplicate")
	ErrConflict  = errors.New("inventory: state conflict") // e.g. revoking a revoked cert
	ErrTampered  = errors.New("inventory: audit chain broken")
	ErrInvalid   = errors.New("inventory: invalid argument") // malformed serial, SAN, reason, DER …
)
