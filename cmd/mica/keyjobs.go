package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mica-pki/mica/alerts"
	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// keyJobs is the server's key-lifecycle loop: the rotation-due record
// (one audit event and log line per key and due date, and the
// mica_key_rotation_due_seconds gauge; the webhook alert is the alert
// engine's key_rotation_due kind),
// automatic rotation of the issuing CA when its root is online, and the
// retirement of superseded issuers whose last certificate has expired,
// and scheduled backups with the verified-backup alert (backupjob.go).
// One replica runs each tick (inventory job lock).
type keyJobs struct {
	e   *env
	g   *engine
	log *slog.Logger
	now func() time.Time
	due *prometheus.GaugeVec
	// verifiedAge is how old the last verified backup is.
	verifiedAge prometheus.Gauge
}

func newKeyJobs(e *env, g *engine) *keyJobs {
	j := &keyJobs{e: e, g: g, log: g.log, now: time.Now,
		due: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mica_key_rotation_due_seconds",
			Help: "Seconds until an active key's cryptoperiod ends (negative: overdue), per key.",
		}, []string{"key", "class"}),
		verifiedAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mica_backup_last_verified_age_seconds",
			Help: "Seconds since the last successful 'mica backup verify' recorded in the inventory.",
		})}
	if j.log == nil {
		j.log = slog.Default()
	}
	if g.registry != nil {
		g.registry.MustRegister(j.due, j.verifiedAge)
	}
	return j
}

// run ticks every hour until ctx ends; cryptoperiods are years, an hour
// of lateness is nothing, and the alert fires weeks ahead.
func (j *keyJobs) run(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if err := j.tick(ctx); err != nil && ctx.Err() == nil {
			j.log.Error("key lifecycle job failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tick runs the jobs once.
func (j *keyJobs) tick(ctx context.Context) error {
	release, ok, err := j.g.store.TryLock(ctx, "key-lifecycle")
	if err != nil || !ok {
		return err
	}
	defer release()
	now := j.now()
	who := ca.Actor{Name: "mica", Protocol: "system", Source: source()}
	// Keys that appeared since start (the EST pool-sealing key made on
	// first use, new EAB keys, their first use) reach the inventory here.
	if err := syncAllKeys(ctx, j.g.store, j.g.keys, j.g.cfg, j.e.getenv, who); err != nil {
		return err
	}
	if _, err := ca.RetireIssuers(ctx, j.g.store, now, who); err != nil {
		return err
	}
	if err := j.backups(ctx, now); err != nil {
		return err
	}
	keys, err := j.g.store.Keys(ctx)
	if err != nil {
		return err
	}
	kl := keyLifeAlerts(j.g.cfg.KeyPolicy)
	for _, k := range keys {
		if k.RotationDue == nil || k.Status != inventory.KeyActive {
			j.due.DeleteLabelValues(k.ID, k.Class)
			continue
		}
		left := k.RotationDue.Sub(now)
		j.due.WithLabelValues(k.ID, k.Class).Set(left.Seconds())
		if !alerts.RotationDue(k, now, kl.RotationWarning, kl.SelfRotating[k.Class]) {
			continue
		}
		if err := j.rotationDue(ctx, k, left); err != nil {
			return err
		}
		if k.Class == ca.KeyClassIssuing && j.g.cfg.KeyPolicy.AutoRotate {
			if err := j.autoRotate(ctx, k, keys, now, who); err != nil {
				return err
			}
		}
	}
	return nil
}

// rotationDue writes the key.rotation_due audit event and log line once
// per key and due date: the audit log itself says whether it was written
// (by this process, an earlier one or another replica; the caller holds
// the job lock), so restarts do not repeat it.
func (j *keyJobs) rotationDue(ctx context.Context, k inventory.Key, left time.Duration) error {
	evs, err := j.g.store.Events(ctx, inventory.EventFilter{Action: "key.rotation_due", Object: "key:" + k.ID, Limit: 100})
	if err != nil {
		return err
	}
	for _, ev := range evs {
		var d struct {
			Due time.Time `json:"due"`
		}
		if json.Unmarshal(ev.Details, &d) == nil && d.Due.Equal(*k.RotationDue) {
			return nil
		}
	}
	j.log.Warn("key rotation due", "key", k.ID, "class", k.Class, "due", k.RotationDue.UTC().Format(time.RFC3339))
	details, _ := json.Marshal(map[string]any{"class": k.Class, "due": k.RotationDue, "seconds_left": int64(left.Seconds())})
	_, err = j.g.store.AppendEvent(ctx, inventory.Event{Actor: "mica", Action: "key.rotation_due", Protocol: "system",
		Source: source(), Object: "key:" + k.ID, Outcome: "ok", Details: details})
	return err
}

// autoRotate schedules the successor of issuing key k to take over at its
// due date, unless a successor already exists or the root is offline
// (then the alert is all that happens: an operator runs the round trip).
func (j *keyJobs) autoRotate(ctx context.Context, k inventory.Key, keys []inventory.Key, now time.Time, who ca.Actor) error {
	for _, o := range keys {
		if o.Class == ca.KeyClassIssuing && o.ID != k.ID && o.Created.After(k.Created) && o.Status != inventory.KeyRetired && o.Status != inventory.KeyDestroyed {
			return nil // already rotated (or a CSR is out with the offline root)
		}
	}
	signer, closeRoot, err := onlineRootSigner(ctx, j.e, j.g.cfg, j.g.store, j.g.keys)
	if err != nil {
		var ce *cliError
		if errors.As(err, &ce) && ce.code == exitConfig {
			return nil // offline root
		}
		return err
	}
	defer closeRoot()
	at := *k.RotationDue
	if at.Before(now) {
		at = now
	}
	res, err := ca.Rotate(ctx, ca.RotateOptions{Store: j.g.store, Keys: j.g.keys, RootSigner: signer, At: at,
		URLs: j.g.cfg.EffectiveURLs(), Policy: j.g.cfg.KeyPolicy.CA(), Now: func() time.Time { return now }, Who: who})
	if err != nil {
		return err
	}
	j.log.Warn("issuing CA rotated automatically; every replica switches new issuance to it at the activation time",
		"new", res.Issuer.ID, "replaces", k.ID, "activates", at.UTC().Format(time.RFC3339))
	// This replica learns the schedule at once; the others at their next
	// issuer watch tick (a minute), well before a due date weeks ahead.
	if m, ok := j.g.keys.(*ca.MeteredKeys); ok {
		if err := m.Refresh(ctx); err != nil {
			return err
		}
	}
	if j.g.ca != nil {
		if err := j.g.ca.Reload(ctx); err != nil {
			return err
		}
	}
	return nil
}
