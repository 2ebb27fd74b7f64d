package ca

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// ErrKeyRetired is returned by a metered signer whose key the inventory
// marks retired or destroyed. The refusal sits in the signing path itself,
// below every caller (issuance, CRLs, OCSP), so no code path can sign with
// a key the operator took out of service.
var ErrKeyRetired = errors.New("ca: the key is retired and may not sign")

// KeyUsageStore is what the meter needs from the inventory: the key rows
// (for their status) and a way to add counted usage. *inventory.Store
// satisfies it. Both must be safe for concurrent use.
type KeyUsageStore interface {
	Keys(ctx context.Context) ([]inventory.Key, error)
	AddKeyUsage(ctx context.Context, us []inventory.KeyUsage) error
}

// HourlyKeyUsageStore is a KeyUsageStore that also keeps usage per UTC
// hour (*inventory.Store does: table key_usage_hourly, read by the alert
// engine's burst and off-hours checks). When the store has it, a flush
// writes the lifetime counters and the hourly buckets in one transaction,
// as increments, so replicas sum exactly. Each usage it receives lies in
// one UTC hour.
type HourlyKeyUsageStore interface {
	KeyUsageStore
	RecordKeyUsage(ctx context.Context, us []inventory.KeyUsage) error
}

// usageKey is one pending bucket: a key URI and the UTC hour its
// signatures were made in.
type usageKey struct {
	uri  string
	hour time.Time
}

// MeteredKeys wraps a key backend so that every signature made through a
// Signer it hands out is counted (per key URI and UTC hour, in memory) and checked
// against the key's inventory status. Counts are flushed to the store as
// increments every FlushEvery and at Close, so replicas sharing one
// database add up rather than overwrite each other; a crash loses at most
// one interval of counts, never a refusal.
//
// It is an hsm.Backend itself, so the CA and the revocation service use it
// unchanged; cmd/mica wraps the backend once where it opens it.
type MeteredKeys struct {
	hsm.Backend
	store KeyUsageStore
	log   *slog.Logger
	now   func() time.Time

	mu      sync.Mutex
	status  map[string]string // key URI → inventory status
	pending map[usageKey]*inventory.KeyUsage

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// MeterOptions tune a MeteredKeys. Zero values take the defaults.
type MeterOptions struct {
	FlushEvery time.Duration    // default 30s; negative: flush only on Flush/Close
	Now        func() time.Time // default time.Now
	Logger     *slog.Logger
}

// NewMeteredKeys wraps b, loads the key statuses from st and starts the
// periodic flush.
func NewMeteredKeys(ctx context.Context, b hsm.Backend, st KeyUsageStore, o MeterOptions) (*MeteredKeys, error) {
	m := &MeteredKeys{Backend: b, store: st, log: o.Logger, now: o.Now,
		status: map[string]string{}, pending: map[usageKey]*inventory.KeyUsage{},
		stop: make(chan struct{}), done: make(chan struct{})}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.now == nil {
		m.now = time.Now
	}
	if err := m.Refresh(ctx); err != nil {
		return nil, err
	}
	every := o.FlushEvery
	if every == 0 {
		every = 30 * time.Second
	}
	if every < 0 {
		close(m.done)
		return m, nil
	}
	go m.loop(every)
	return m, nil
}

func (m *MeteredKeys) loop(every time.Duration) {
	defer close(m.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), every)
			if err := m.Flush(ctx); err != nil {
				m.log.Warn("flushing key usage counts failed; they are kept for the next try", "err", err)
			}
			if err := m.Refresh(ctx); err != nil {
				m.log.Warn("reloading key statuses failed", "err", err)
			}
			cancel()
		}
	}
}

// Refresh reloads the key statuses from the store. Another replica's (or
// the CLI's) retirement takes effect here at the next refresh.
func (m *MeteredKeys) Refresh(ctx context.Context) error {
	keys, err := m.store.Keys(ctx)
	if err != nil {
		return Wrap(ErrUnavailable, err, "cannot read the key inventory")
	}
	st := make(map[string]string, len(keys))
	for _, k := range keys {
		if k.URI != "" {
			st[k.URI] = k.Status
		}
	}
	m.mu.Lock()
	m.status = st
	m.mu.Unlock()
	return nil
}

// SetStatus records a status change made by this process at once, without
// waiting for the next Refresh.
func (m *MeteredKeys) SetStatus(uri, status string) {
	m.mu.Lock()
	m.status[uri] = status
	m.mu.Unlock()
}

// Flush writes the counts gathered since the last flush: to the keys'
// lifetime counters and, when the store is an HourlyKeyUsageStore, to the
// hourly buckets in the same transaction. On failure they are put back
// and retried at the next flush.
func (m *MeteredKeys) Flush(ctx context.Context) error {
	m.mu.Lock()
	batch := make([]inventory.KeyUsage, 0, len(m.pending))
	for _, u := range m.pending {
		batch = append(batch, *u)
	}
	m.pending = map[usageKey]*inventory.KeyUsage{}
	m.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	write := m.store.AddKeyUsage
	if h, ok := m.store.(HourlyKeyUsageStore); ok {
		write = h.RecordKeyUsage
	}
	if err := write(ctx, batch); err != nil {
		for _, u := range batch {
			m.record(u.URI, u.Signatures, u.First, u.Last)
		}
		return err
	}
	return nil
}

// Pending returns the signatures counted for uri and not yet flushed.
func (m *MeteredKeys) Pending(uri string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for k, u := range m.pending {
		if k.uri == uri {
			n += u.Signatures
		}
	}
	return n
}

func (m *MeteredKeys) record(uri string, n int64, first, last time.Time) {
	k := usageKey{uri: uri, hour: inventory.HourOf(first)}
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.pending[k]
	if u == nil {
		m.pending[k] = &inventory.KeyUsage{URI: uri, Signatures: n, First: first, Last: last}
		return
	}
	u.Signatures += n
	if first.Before(u.First) {
		u.First = first
	}
	if last.After(u.Last) {
		u.Last = last
	}
}

// allowed reports whether uri may sign now.
func (m *MeteredKeys) allowed(uri string) error {
	m.mu.Lock()
	st := m.status[uri]
	m.mu.Unlock()
	if st == inventory.KeyRetired || st == inventory.KeyDestroyed {
		return fmt.Errorf("%w (key %s is %s)", ErrKeyRetired, redactURI(uri), st)
	}
	return nil
}

// Signer returns a counting, status-checking signer for uri. A retired
// key is refused here already, so a CA cannot even be built on one.
func (m *MeteredKeys) Signer(ctx context.Context, uri string) (crypto.Signer, error) {
	if err := m.allowed(uri); err != nil {
		return nil, err
	}
	s, err := m.Backend.Signer(ctx, uri)
	if err != nil {
		return nil, err
	}
	return &meteredSigner{Signer: s, uri: uri, m: m}, nil
}

// DeleteKey destroys the key in the backend and stops this process using
// it at once.
func (m *MeteredKeys) DeleteKey(ctx context.Context, uri string) error {
	m.SetStatus(uri, inventory.KeyDestroyed)
	return m.Backend.DeleteKey(ctx, uri)
}

// Close stops the flush loop, writes the last counts and closes the
// backend.
func (m *MeteredKeys) Close() error {
	var ferr error
	m.once.Do(func() {
		close(m.stop)
		<-m.done
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if ferr = m.Flush(ctx); ferr != nil {
			m.log.Error("flushing key usage counts at shutdown failed", "err", ferr)
		}
	})
	return errors.Join(ferr, m.Backend.Close())
}

// meteredSigner counts successful signatures; failed ones are not uses.
type meteredSigner struct {
	crypto.Signer
	uri string
	m   *MeteredKeys
}

func (s *meteredSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := s.m.allowed(s.uri); err != nil {
		return nil, err
	}
	sig, err := s.Signer.Sign(r, digest, opts)
	if err != nil {
		return nil, err
	}
	now := s.m.now()
	s.m.record(s.uri, 1, now, now)
	return sig, nil
}
