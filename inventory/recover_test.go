package inventory_test

import (
	"context"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestRecoverDebris leaves the store in the exact state a SIGKILL leaves
// at each point of an issuing request, runs the recovery pass and checks
// that every request is finished: linked, closed with a problem, failed
// with its serial kept, or its token handed back, and that young rows a
// live request may still finish are left alone.
func TestRecoverDebris(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			inventorytest.Issuer(t, st, "ica")
			if err := st.CreateACMEAccount(ctx, newAccount("acc"), inventory.Event{}); err != nil {
				t.Fatal(err)
			}
			order := func(id, issuer, serial string) {
				t.Helper()
				o := &inventory.ACMEOrder{ID: id, AccountID: "acc", Profile: "server", Status: "processing",
					Identifiers: []inventory.ACMEIdentifier{{Type: "dns", Value: "host.example.test"}},
					Expires:     time.Now().Add(time.Hour), CertIssuerID: issuer, CertSerial: serial}
				if err := st.CreateACMEOrder(ctx, o, nil); err != nil {
					t.Fatal(err)
				}
			}
			// Killed after the reservation, before signing.
			requested := reserve(t, st, newCert(t, "ica"))
			order("o-requested", "ica", requested.Serial)
			// Killed after the certificate's commit, before the order's.
			issued := inventorytest.Issue(t, st, newCert(t, "ica"))
			order("o-issued", "ica", issued.Serial)
			// Killed between ready → processing and the reservation.
			order("o-none", "", "")
			// A reservation of a request that is not an order (EST, CLI).
			orphan := reserve(t, st, newCert(t, "ica"))
			// EST tokens consumed: by a crashed enrollment; by one that
			// issued; by one held for approval.
			now := time.Now()
			for _, id := range []string{"est-crashed", "est-issued", "est-held", "est-idevid"} {
				tok := &inventory.ESTToken{ID: id, Label: "default", SecretSHA256: "aa", ExpiresAt: now.Add(24 * time.Hour)}
				if err := st.CreateESTToken(ctx, tok, inventory.Event{Actor: "test"}); err != nil {
					t.Fatal(err)
				}
				if _, err := st.UseESTToken(ctx, id, "default", "aa", "192.0.2.9", now); err != nil {
					t.Fatal(err)
				}
			}
			c := newCert(t, "ica")
			c.Requester, c.Protocol = "est-token:est-issued", "est"
			inventorytest.Issue(t, st, c)
			c = newCert(t, "ica")
			c.Requester, c.Protocol = "idevid:CN=dev 1+est-token:est-idevid", "est"
			inventorytest.Issue(t, st, c)
			if err := st.PutESTPending(ctx, &inventory.ESTPending{ID: "p1", Label: "default", CSRSHA256: "cc", CSR: []byte{1},
				Requester: "est-token:est-held", Status: "pending"}, inventory.Event{Actor: "test"}); err != nil {
				t.Fatal(err)
			}

			seen := map[string]time.Time{}
			opts := inventory.RecoverOptions{Now: now, StaleAfter: 40 * time.Second, TokenStaleAfter: 2 * time.Minute, Seen: seen}
			// A pass right away: everything may still be a live request,
			// except the issued certificate, which is linked at once.
			r, err := st.Recover(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			if want := (inventory.Recovered{LinkedOrders: 1}); r != want {
				t.Fatalf("young pass = %+v, want %+v", r, want)
			}
			wantState(t, st, requested.Serial, inventory.StateRequested)
			// After the bound.
			opts.Now = now.Add(3 * time.Minute)
			if r, err = st.Recover(ctx, opts); err != nil {
				t.Fatal(err)
			}
			if want := (inventory.Recovered{FailedReservations: 2, InvalidOrders: 2, ReleasedTokens: 1}); r != want {
				t.Fatalf("pass after the bound = %+v, want %+v", r, want)
			}
			wantState(t, st, requested.Serial, inventory.StateFailed)
			wantState(t, st, orphan.Serial, inventory.StateFailed)
			for id, want := range map[string]string{"o-requested": "invalid", "o-issued": "valid", "o-none": "invalid"} {
				o, err := st.ACMEOrder(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if o.Status != want {
					t.Errorf("order %s = %s, want %s", id, o.Status, want)
				}
				if want == "invalid" && string(o.Error) != string(inventory.OrderInterrupted) {
					t.Errorf("order %s error = %s, want the interrupted problem", id, o.Error)
				}
				if want == "valid" && o.CertSerial != issued.Serial {
					t.Errorf("order %s certificate = %s, want %s", id, o.CertSerial, issued.Serial)
				}
			}
			if len(seen) != 0 {
				t.Errorf("seen still holds %v after the orders closed", seen)
			}
			// The crashed token works again; the others stay spent.
			if _, err := st.UseESTToken(ctx, "est-crashed", "default", "aa", "192.0.2.9", opts.Now); err != nil {
				t.Errorf("released token: %v", err)
			}
			for _, id := range []string{"est-issued", "est-held", "est-idevid"} {
				if _, err := st.UseESTToken(ctx, id, "default", "aa", "192.0.2.9", opts.Now); err == nil {
					t.Errorf("token %s was handed back though it paid for something", id)
				}
			}
			// A second pass finds nothing (the token just used again is a
			// live request's); the audit chain holds.
			if r, err = st.Recover(ctx, opts); err != nil || r.Total() != 0 {
				t.Fatalf("idempotent pass = %+v, %v", r, err)
			}
			if _, err := st.VerifyEvents(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func wantState(t *testing.T, st *inventory.Store, serial string, want inventory.State) {
	t.Helper()
	c, err := st.Certificate(context.Background(), "ica", serial)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != want {
		t.Errorf("certificate %s = %s, want %s", serial, c.State, want)
	}
}
