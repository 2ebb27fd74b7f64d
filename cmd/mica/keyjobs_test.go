package main

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mica-pki/mica/config"
	"github.com/mica-pki/mica/inventory"
)

// TestKeyJobsAlertAndAutoRotate runs the server's key job in process with
// an injected clock ten days before the issuing key's rotation is due:
// the gauge shows the time left, one key.rotation_due event is written
// (not one per tick), and with auto_rotate and an online root a successor
// is scheduled to take over exactly at the due date.
func TestKeyJobsAlertAndAutoRotate(t *testing.T) {
	t.Parallel()
	c := newSoftCA(t, "--root-id", "root", "--issuing-id", "issuing")
	ctx := context.Background()
	cfg, err := config.Load(config.Path(c.dir))
	if err != nil {
		t.Fatal(err)
	}
	cfg.KeyPolicy.AutoRotate = true
	var out bytes.Buffer
	e := &env{stdout: &out, stderr: &out}
	g, err := openEngine(ctx, e, cfg, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	g.registry = prometheus.NewRegistry()
	k, err := g.store.Key(ctx, "issuing")
	if err != nil || k.RotationDue == nil {
		t.Fatalf("issuing key = %+v, %v; want a rotation due date", k, err)
	}
	due := *k.RotationDue
	j := newKeyJobs(e, g)
	j.now = func() time.Time { return due.Add(-10 * 24 * time.Hour) }
	for range 2 {
		if err := j.tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(j.due.WithLabelValues("issuing", "issuing")); got != (10 * 24 * time.Hour).Seconds() {
		t.Errorf("mica_key_rotation_due_seconds{key=issuing} = %v, want %v", got, (10 * 24 * time.Hour).Seconds())
	}
	evs, err := g.store.Events(ctx, inventory.EventFilter{Action: "key.rotation_due"})
	if err != nil || len(evs) != 1 || evs[0].Object != "key:issuing" {
		t.Errorf("rotation_due events = %+v, %v; want one for key:issuing", evs, err)
	}
	issuers, err := g.store.Issuers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var next *inventory.Issuer
	for i := range issuers {
		if !issuers[i].IsRoot && issuers[i].ID != "issuing" {
			next = &issuers[i]
		}
	}
	if next == nil {
		t.Fatalf("no successor issuer after auto-rotation: %+v", issuers)
	}
	if start := next.NotBefore; !start.Equal(due.Truncate(time.Second)) {
		t.Errorf("successor %s activates at %s, want the due date %s", next.ID, start, due)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
