package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mica-pki/mica/alerts"
	"github.com/mica-pki/mica/config"
	"github.com/mica-pki/mica/inventory"
)

// lastEvent returns the time of the newest event with action, or zero.
func lastEvent(ctx context.Context, st *inventory.Store, action string) (time.Time, error) {
	evs, err := st.Events(ctx, inventory.EventFilter{Action: action, Limit: 1})
	if err != nil || len(evs) == 0 {
		return time.Time{}, err
	}
	return evs[0].Time, nil
}

// backups runs the scheduled backup and the verified-backup record (one
// backup.overdue audit event and log line per overdue period; the webhook
// alert is the alert engine's backup_overdue kind), from
// the key job's tick (so under its job lock: one replica backs up).
func (j *keyJobs) backups(ctx context.Context, now time.Time) error {
	pol := j.g.cfg.KeyPolicy.Backup
	if pol.Dir != "" && len(pol.Recipients) > 0 {
		last, err := lastEvent(ctx, j.g.store, "backup.create")
		if err != nil {
			return err
		}
		if last.IsZero() || now.Sub(last) >= pol.Interval() {
			if err := j.scheduledBackup(ctx, now); err != nil {
				return err
			}
		}
	}
	verified, err := alerts.LastVerifiedBackup(ctx, j.g.store)
	if err != nil {
		return err
	}
	age := now.Sub(verified)
	if verified.IsZero() {
		age = time.Duration(1<<63 - 1)
	}
	j.verifiedAge.Set(age.Seconds())
	if age <= pol.MaxVerifiedAge() || j.e.dev {
		return nil // a development CA has nothing worth backing up
	}
	when := "never"
	if !verified.IsZero() {
		when = verified.UTC().Format(time.RFC3339)
	}
	// One event per overdue period (per last verified backup), however
	// many restarts and replicas see it: the audit log remembers.
	evs, err := j.g.store.Events(ctx, inventory.EventFilter{Action: "backup.overdue", Limit: 1})
	if err != nil {
		return err
	}
	if len(evs) > 0 {
		var d struct {
			LastVerified string `json:"last_verified"`
		}
		if json.Unmarshal(evs[0].Details, &d) == nil && d.LastVerified == when {
			return nil
		}
	}
	j.log.Warn("the last verified backup is older than policy; run 'mica backup verify FILE --data DIR'", "last_verified", when, "max_age", config.FormatDuration(pol.MaxVerifiedAge()))
	details, _ := json.Marshal(map[string]any{"last_verified": when, "max_age": config.FormatDuration(pol.MaxVerifiedAge())})
	_, err = j.g.store.AppendEvent(ctx, inventory.Event{Actor: "mica", Action: "backup.overdue", Protocol: "system",
		Source: source(), Object: "backup", Outcome: "ok", Details: details})
	return err
}

// scheduledBackup writes one backup into the policy directory and
// deletes the oldest beyond the retention count.
func (j *keyJobs) scheduledBackup(ctx context.Context, now time.Time) error {
	pol := j.g.cfg.KeyPolicy.Backup
	recipients, err := backupRecipients(pol.Recipients, "")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(pol.Dir, 0o700); err != nil {
		return err
	}
	out := filepath.Join(pol.Dir, "mica-"+now.UTC().Format("20060102T150405Z")+".age")
	if _, _, err := writeBackup(ctx, j.g.cfg, configFile(j.g.cfg), j.g.store, recipients, out, "mica"); err != nil {
		return err
	}
	j.log.Info("scheduled backup written", "file", out)
	ents, err := os.ReadDir(pol.Dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "mica-") && strings.HasSuffix(e.Name(), ".age") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names) // the timestamp format sorts by time
	for len(names) > pol.Retain() {
		if err := os.Remove(filepath.Join(pol.Dir, names[0])); err != nil {
			return err
		}
		names = names[1:]
	}
	return nil
}

// configFile is the configuration a scheduled backup includes: the data
// directory's mica.yaml.
func configFile(cfg *config.Config) string { return config.Path(cfg.DataDir) }
