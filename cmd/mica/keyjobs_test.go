package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mica-pki/mica/config"
	"github.com/mica-pki/mica/inventory"
)

// TestKeyJobsAlertAndAutoRotate runs the server's key job in process with
// an injected clock ten days before the issuing key's rotation is due:
// the gauge shows the time left, one key.rotation_due event is written
// (not one per tick, nor one per restart), and with auto_rotate and an online root a successor
// is scheduled to take over exactly at the due date. The same tick runs
// scheduled backups with retention and the never-verified-backup alert.
func TestKeyJobsAlertAndAutoRotate(t *testing.T) {
	t.Parallel()
	c := newSoftCA(t, "--root-id", "root", "--issuing-id", "issuing")
	ctx := context.Background()
	cfg, err := config.Load(config.Path(c.dir))
	if err != nil {
		t.Fatal(err)
	}
	cfg.KeyPolicy.AutoRotate = true
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	backupDir := t.TempDir()
	cfg.KeyPolicy.Backup = config.BackupPolicy{Dir: backupDir, Recipients: []string{id.Recipient().String()}, Keep: 2}
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
	// Three ticks on the injected clock, a year after the last backup
	// event the store stamped in real time: each one is due a backup.
	for i := range 3 {
		j.now = func() time.Time { return due.Add(-10*24*time.Hour + time.Duration(i)*time.Minute) }
		if err := j.tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(backupDir, "mica-*.age")); len(files) != 2 {
		t.Errorf("scheduled backups kept = %v, want the newest 2", files)
	}
	// On the real clock the last backup is seconds old: none is due.
	j.now = time.Now
	if err := j.tick(ctx); err != nil {
		t.Fatal(err)
	}
	if evs, _ := g.store.Events(ctx, inventory.EventFilter{Action: "backup.create"}); len(evs) != 3 {
		t.Errorf("backup.create events = %d, want 3 (no backup inside the interval)", len(evs))
	}
	if evs, _ := g.store.Events(ctx, inventory.EventFilter{Action: "backup.overdue"}); len(evs) != 1 {
		t.Errorf("backup.overdue events = %d, want 1 (never verified, alerted once)", len(evs))
	}
	if got := testutil.ToFloat64(j.verifiedAge); got < 1e9 {
		t.Errorf("mica_backup_last_verified_age_seconds = %v, want huge (never verified)", got)
	}
	j.now = func() time.Time { return due.Add(-10 * 24 * time.Hour) }
	if err := j.tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(j.due.WithLabelValues("issuing", "issuing")); got != (10 * 24 * time.Hour).Seconds() {
		t.Errorf("mica_key_rotation_due_seconds{key=issuing} = %v, want %v", got, (10 * 24 * time.Hour).Seconds())
	}
	evs, err := g.store.Events(ctx, inventory.EventFilter{Action: "key.rotation_due"})
	if err != nil || len(evs) != 1 || evs[0].Object != "key:issuing" {
		t.Errorf("rotation_due events = %+v, %v; want one for key:issuing", evs, err)
	}
	// A restart (or another replica taking the job lock) is a new
	// keyJobs with no memory: the audit log says both events exist for
	// this due date and this never-verified period, so neither repeats.
	g.registry = prometheus.NewRegistry()
	restarted := newKeyJobs(e, g)
	restarted.now = func() time.Time { return due.Add(-9 * 24 * time.Hour) }
	if err := restarted.tick(ctx); err != nil {
		t.Fatal(err)
	}
	if evs, _ := g.store.Events(ctx, inventory.EventFilter{Action: "key.rotation_due", Object: "key:issuing"}); len(evs) != 1 {
		t.Errorf("after a restart, rotation_due events for key:issuing = %d, want still 1", len(evs))
	}
	if evs, _ := g.store.Events(ctx, inventory.EventFilter{Action: "backup.overdue"}); len(evs) != 1 {
		t.Errorf("after a restart, backup.overdue events = %d, want still 1", len(evs))
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
