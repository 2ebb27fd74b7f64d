package web_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/web"
)

// fakeDenials records what would be summarised.
type fakeDenials struct {
	mu sync.Mutex
	n  map[[3]string]int
}

var _ web.DenialRecorder = (*fakeDenials)(nil)

func (f *fakeDenials) Record(protocol, source, kind string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == nil {
		f.n = map[[3]string]int{}
	}
	f.n[[3]string{protocol, source, kind}]++
}

// With a summariser, bad and missing bearer tokens and logins refused by
// the source throttle are counted, not written one event each; the
// failed password checks the throttle and the account lock read stay
// single events, so throttling still works.
func TestDenialsSummarisedNotWritten(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		d := &fakeDenials{}
		e := newUIOn(t, s, func(w *web.Server) { w.WithLoginSourceLimit(2, 15*time.Minute).WithDenials(d) })
		for i := range 50 {
			req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/certificates", nil)
			if i%5 != 0 {
				req.Header.Set("Authorization", "Bearer mica_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
			}
			res, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("bad bearer = %d, want 401", res.StatusCode)
			}
		}
		for _, name := range []string{"vic", "aud"} {
			if _, code := e.client(t, name, "wrong password!!"); code != http.StatusUnauthorized {
				t.Fatalf("failed login = %d, want 401", code)
			}
		}
		for range 20 {
			if _, code := e.client(t, "ada", "correct horse battery"); code != http.StatusTooManyRequests {
				t.Fatalf("login from a throttled source = %d, want 429", code)
			}
		}
		for action, want := range map[string]int{"api.auth": 0, inventory.ActionLoginThrottled: 0, inventory.ActionLogin: 2} {
			if evs, err := s.Events(ctx, inventory.EventFilter{Action: action}); err != nil || len(evs) != want {
				t.Errorf("%s events = %d, %v; want %d", action, len(evs), err, want)
			}
		}
		want := map[[3]string]int{{"api", "127.0.0.1", "api.bearer"}: 40, {"api", "127.0.0.1", "api.bearer_missing"}: 10,
			{"ui", "127.0.0.1", inventory.ActionLoginThrottled}: 20}
		for k, n := range want {
			if d.n[k] != n {
				t.Errorf("recorded %v = %d, want %d (all: %v)", k, d.n[k], n, d.n)
			}
		}
	})
}
