package enroll

import (
	"context"
	"crypto"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

var sealMessage = sha256.Sum256([]byte("MICA EST key pool sealing key, version 1"))

// sealer encrypts pooled private keys with AES-256-GCM under the sealing
// key ca.SealingKey derives from the backend key ca.PoolSealKeyLabel.
type sealer struct{ aead cipher.AEAD }

func openSealer(ctx context.Context, keys hsm.Backend) (*sealer, error) {
	aead, err := ca.SealingKey(ctx, keys, ca.PoolSealKeyLabel, sealMessage[:], "mica est pool aes-256-gcm")
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(pkcs8 []byte, aad string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, pkcs8, []byte(aad)), nil
}

func (s *sealer) open(sealed []byte, aad string) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed key too short")
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], []byte(aad))
}

// generateKey makes a subject key of type kt in memory.
func generateKey(kt hsm.KeyType) (crypto.Signer, error) {
	switch kt {
	case hsm.ECP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case hsm.ECP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case hsm.RSA2048, hsm.RSA3072, hsm.RSA4096:
		bits := map[hsm.KeyType]int{hsm.RSA2048: 2048, hsm.RSA3072: 3072, hsm.RSA4096: 4096}[kt]
		return rsa.GenerateKey(rand.Reader, bits)
	case hsm.Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("%w: key type %s", hsm.ErrUnsupported, kt)
}

// keyPool is one label's stock of pre-generated, sealed keys in the store.
// Any replica may claim from it; the claim deletes the row in the same
// statement. Refills run in the background when the stock falls to 20%.
type keyPool struct {
	s    *Server
	l    *label
	kt   hsm.KeyType
	size int
	kick chan struct{}
}

func newKeyPool(s *Server, l *label) *keyPool {
	kt, _ := hsm.ParseKeyType(l.ServerKeyGen.KeyType)
	return &keyPool{s: s, l: l, kt: kt, size: l.ServerKeyGen.Size, kick: make(chan struct{}, 1)}
}

func (p *keyPool) aad() string { return "est-pool/" + p.l.name + "/" + string(p.kt) }

func (p *keyPool) run(ctx context.Context) {
	if p.size <= 0 {
		return
	}
	for {
		if err := p.refill(ctx); err != nil && ctx.Err() == nil {
			p.s.log.Error("refilling EST key pool", "label", p.l.name, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-time.After(time.Minute):
		}
	}
}

// refill tops the pool up to its size when it holds 20% or less.
func (p *keyPool) refill(ctx context.Context) error {
	n, err := p.s.store.CountESTPoolKeys(ctx, p.l.name, string(p.kt))
	if err != nil {
		return err
	}
	p.s.m.poolKeys.WithLabelValues(p.l.name).Set(float64(n))
	if n*5 > p.size {
		return nil
	}
	p.s.m.refills.WithLabelValues(p.l.name).Inc()
	p.event(ctx, "est.pool.refill", map[string]any{"label": p.l.name, "key_type": p.kt, "had": n, "size": p.size})
	for n < p.size {
		batch := make([][]byte, 0, 8)
		for i := 0; i < 8 && n+len(batch) < p.size; i++ {
			k, err := generateKey(p.kt)
			if err != nil {
				return err
			}
			der, err := x509.MarshalPKCS8PrivateKey(k)
			if err != nil {
				return err
			}
			sealed, err := p.s.sealer.seal(der, p.aad())
			if err != nil {
				return err
			}
			batch = append(batch, sealed)
		}
		if err := p.s.store.PutESTPoolKeys(ctx, p.l.name, string(p.kt), batch); err != nil {
			return err
		}
		n += len(batch)
		p.s.m.poolKeys.WithLabelValues(p.l.name).Set(float64(n))
	}
	return nil
}

// take returns a key from the pool, or a freshly generated one when the
// pool is empty (warm reports which). Either way it nudges the refill.
func (p *keyPool) take(ctx context.Context) (crypto.Signer, bool, error) {
	sealed, err := p.s.store.ClaimESTPoolKey(ctx, p.l.name, string(p.kt))
	if err == nil {
		der, err := p.s.sealer.open(sealed, p.aad())
		if err != nil {
			return nil, false, ca.Wrap(ca.ErrInternal, err, "pooled key does not unseal")
		}
		k, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, false, ca.Wrap(ca.ErrInternal, err, "pooled key does not parse")
		}
		p.nudge()
		return k.(crypto.Signer), true, nil
	}
	if !errors.Is(err, inventory.ErrNotFound) {
		return nil, false, ca.Wrap(ca.ErrUnavailable, err, "key pool unavailable")
	}
	if p.size > 0 {
		p.s.m.empty.WithLabelValues(p.l.name).Inc()
		p.event(ctx, "est.pool.empty", map[string]any{"label": p.l.name, "key_type": p.kt, "size": p.size})
	}
	p.nudge()
	k, err := generateKey(p.kt)
	if err != nil {
		return nil, false, ca.Wrap(ca.ErrInternal, err, "generating key")
	}
	return k, false, nil
}

func (p *keyPool) nudge() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *keyPool) event(ctx context.Context, action string, details map[string]any) {
	d, _ := json.Marshal(details)
	if _, err := p.s.store.AppendEvent(ctx, inventory.Event{Time: p.s.now(), Actor: "system", Action: action,
		Protocol: "est", Object: "est-pool:" + p.l.name, Outcome: "ok", Details: d}); err != nil {
		p.s.log.Error("auditing EST pool event", "err", err)
	}
}

// metrics are the EST server's Prometheus collectors.
type metrics struct {
	poolKeys *prometheus.GaugeVec
	refills  *prometheus.CounterVec
	empty    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		poolKeys: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mica_est_pool_keys", Help: "Pre-generated serverkeygen keys in the pool, per label."}, []string{"label"}),
		refills:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mica_est_pool_refills_total", Help: "Key pool refills started, per label."}, []string{"label"}),
		empty:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mica_est_pool_empty_total", Help: "serverkeygen requests that found the pool empty, per label."}, []string{"label"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.poolKeys, m.refills, m.empty} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
