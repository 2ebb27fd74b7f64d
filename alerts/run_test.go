package alerts_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mica-pki/mica/alerts"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestRunWeakKey: the engine's Run loop, under the job lock, reports an
// issued RSA-1024 certificate as weak and stops when its context ends.
func TestRunWeakKey(t *testing.T) {
	ctx := context.Background()
	st := inventorytest.SQLite(t)
	inventorytest.Issuer(t, st, "iss")
	now := time.Now().UTC().Truncate(time.Second)
	c := inventory.Certificate{IssuerID: "iss", Serial: inventorytest.RandomSerial(t), CommonName: "legacy.test", KeyType: "RSA-1024",
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour)}
	if err := st.ReserveCertificate(ctx, &c); err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CompleteCertificate(ctx, "iss", c.Serial, inventorytest.DER(t, &c, key), "", inventory.Event{Actor: "test"}); err != nil {
		t.Fatal(err)
	}

	got := make(chan alerts.Alert, 4)
	secret := []byte("k")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var a alerts.Alert
		if !alerts.Verify(secret, body, r.Header.Get(alerts.HeaderSignature)) || json.Unmarshal(body, &a) != nil {
			t.Errorf("bad delivery %s", body)
		}
		got <- a
	}))
	defer srv.Close()
	eng := alerts.New(alerts.Config{Webhooks: []alerts.Webhook{{URL: srv.URL, Secret: secret}}, Interval: time.Hour}, st, nil)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		eng.Run(runCtx)
		close(done)
	}()
	select {
	case a := <-got:
		if a.Kind != alerts.KindWeak || a.Count != 1 || a.Items[0].Subject != "cert:iss/"+c.Serial {
			t.Errorf("alert = %+v, want the RSA-1024 certificate as weak", a)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no alert from Run")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	// The lock was released: another evaluation can take it.
	release, ok, err := st.TryLock(ctx, "alerts")
	if err != nil || !ok {
		t.Errorf("alerts lock still held after Run: %v, %v", ok, err)
	} else {
		release()
	}
}
