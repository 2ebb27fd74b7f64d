package acme

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
)

// nonceLifetime bounds how long a client may hold a nonce. certbot retries
// a badNonce only once, so a nonce must stay good for the whole of any
// realistic pause between two requests.
const nonceLifetime = time.Hour

// nonceEpoch is how often the MAC key rotates. A nonce is accepted under
// its own epoch's key and the one before, so nonceEpoch must exceed
// nonceLifetime.
const nonceEpoch = 24 * time.Hour

// nonceWindow is how many of its own most recent nonces a replica tracks
// in memory (one bit each: 128 KiB). Older own nonces are still redeemed,
// through the database like any replica's.
const nonceWindow = 1 << 20

// A nonce is base64url of version ‖ epoch ‖ replica ‖ counter ‖ issued ‖
// MAC: 1+4+8+8+8+16 = 45 bytes. Only its issuer can interpret it; clients
// treat it as opaque (RFC 8555 section 6.5).
const (
	nonceVersion = 1
	nonceBody    = 1 + 4 + 8 + 8 + 8
	nonceMACLen  = 16
	nonceLen     = nonceBody + nonceMACLen
)

// nonceStore is what nonces need from the inventory. Methods are safe for
// concurrent use; ACMENonceKey returns the same key to every caller,
// UseACMENonce true at most once per id across all callers.
type nonceStore interface {
	ACMENonceKey(ctx context.Context, candidate []byte) ([]byte, error)
	UseACMENonce(ctx context.Context, id string, expires time.Time) (bool, error)
}

// nonces issues and redeems nonces for one replica (docs/architecture.md,
// "Nonces"). Issuing writes nothing; redeeming checks the MAC and expiry
// in memory, refuses a replay of this replica's own recent nonces from
// memory, and otherwise records the redemption in the store, whose
// unique key makes it exactly once across replicas. Safe for concurrent
// use.
type nonces struct {
	store   nonceStore
	now     func() time.Time
	master  []byte
	replica [8]byte // random per incarnation

	mu      sync.Mutex
	counter uint64                   // last counter issued
	used    [nonceWindow / 64]uint64 // bit c%nonceWindow: own nonce c redeemed
	keys    map[uint32][]byte        // derived epoch keys
}

// newNonces reads (or, on a fresh store, creates) the shared MAC key.
func newNonces(ctx context.Context, st nonceStore, now func() time.Time) (*nonces, error) {
	candidate := make([]byte, 32)
	if _, err := rand.Read(candidate); err != nil {
		return nil, err
	}
	master, err := st.ACMENonceKey(ctx, candidate)
	if err != nil {
		return nil, err
	}
	n := &nonces{store: st, now: now, master: master, keys: map[uint32][]byte{}}
	if _, err := rand.Read(n.replica[:]); err != nil {
		return nil, err
	}
	return n, nil
}

// epochKey derives the key of epoch e from the shared master key; the
// caller holds mu.
func (n *nonces) epochKey(e uint32) []byte {
	if k, ok := n.keys[e]; ok {
		return k
	}
	m := hmac.New(sha256.New, n.master)
	m.Write([]byte("mica acme nonce epoch"))
	_ = binary.Write(m, binary.BigEndian, e)
	k := m.Sum(nil)
	if len(n.keys) > 4 {
		clear(n.keys)
	}
	n.keys[e] = k
	return k
}

func nonceMAC(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(nil)[:nonceMACLen]
}

// issue returns a fresh nonce. It writes nothing anywhere.
func (n *nonces) issue() string {
	now := n.now()
	e := uint32(now.Unix() / int64(nonceEpoch/time.Second))
	n.mu.Lock()
	n.counter++
	c := n.counter
	// The slot is reused from the nonce nonceWindow counters ago, which
	// from now on goes through the database.
	n.used[(c%nonceWindow)/64] &^= 1 << (c % 64)
	key := n.epochKey(e)
	n.mu.Unlock()
	b := make([]byte, nonceBody, nonceLen)
	b[0] = nonceVersion
	binary.BigEndian.PutUint32(b[1:], e)
	copy(b[5:], n.replica[:])
	binary.BigEndian.PutUint64(b[13:], c)
	binary.BigEndian.PutUint64(b[21:], uint64(now.Unix()))
	return base64.RawURLEncoding.EncodeToString(append(b, nonceMAC(key, b)...))
}

// redeem reports whether v is a nonce this CA issued, not expired and not
// redeemed before on any replica; it returns true at most once per nonce.
// A forged, tampered, expired or replayed-here nonce is refused without
// touching the store. Errors are the store's.
func (n *nonces) redeem(ctx context.Context, v string) (bool, error) {
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) != nonceLen || b[0] != nonceVersion {
		return false, nil
	}
	now := n.now()
	e := binary.BigEndian.Uint32(b[1:])
	cur := uint32(now.Unix() / int64(nonceEpoch/time.Second))
	if e != cur && e+1 != cur {
		return false, nil
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(b[21:])), 0)
	if !now.Before(issued.Add(nonceLifetime)) || issued.After(now.Add(time.Minute)) {
		return false, nil
	}
	c := binary.BigEndian.Uint64(b[13:])
	own := [8]byte(b[5:13]) == n.replica
	n.mu.Lock()
	key := n.epochKey(e)
	if !hmac.Equal(nonceMAC(key, b[:nonceBody]), b[nonceBody:]) {
		n.mu.Unlock()
		return false, nil
	}
	if own {
		if c == 0 || c > n.counter {
			n.mu.Unlock()
			return false, nil
		}
		if n.counter-c < nonceWindow {
			w, bit := (c%nonceWindow)/64, uint64(1)<<(c%64)
			if n.used[w]&bit != 0 {
				n.mu.Unlock()
				return false, nil // replayed here: no database needed
			}
			n.used[w] |= bit
		}
	}
	n.mu.Unlock()
	// Another replica may have been handed the same nonce: the store's
	// unique key decides, for our own nonces too (docs/architecture.md).
	return n.store.UseACMENonce(ctx, base64.RawURLEncoding.EncodeToString(b[1:nonceBody]), issued.Add(nonceLifetime))
}

// newNonceValue returns a fresh nonce for a Replay-Nonce header.
func (s *Server) newNonceValue(context.Context) (string, error) {
	return s.nonces.issue(), nil
}

// newNonce answers newNonce (RFC 8555 section 7.2): the nonce itself is
// set by common on every response; HEAD gets 200, GET 204.
func (s *Server) newNonce(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func chiProfile(r *http.Request) string { return chi.URLParam(r, "profile") }
