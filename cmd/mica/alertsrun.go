package main

import (
	"context"

	"github.com/mica-pki/mica/alerts"
	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/config"
)

// alertEngine builds the webhook alert engine from the alerts section of
// mica.yaml (anomaly settings included), or returns nil when no webhook is
// configured. An anomaly setting naming an unknown profile is a
// configuration error too. A secret that
// cannot be read is a configuration error: serve refuses to start rather
// than run without the alerts the operator asked for.
func alertEngine(e *env, g *engine) (*alerts.Engine, error) {
	a := g.cfg.Alerts
	if len(a.Webhooks) == 0 {
		return nil, nil
	}
	profiles := make([]string, 0, len(g.cfg.Profiles))
	for name := range g.cfg.Profiles {
		profiles = append(profiles, name)
	}
	anomaly, err := a.Anomaly(profiles)
	if err != nil {
		return nil, &cliError{code: exitConfig, msg: err.Error()}
	}
	cfg := alerts.Config{Interval: a.Interval.D(), RenewalWindow: a.RenewalWindow.D(), ExpiryWindow: a.ExpiryWindow.D(),
		RepeatAfter: a.RepeatAfter.D(), DeniedBurst: a.DeniedBurst, DeniedWindow: a.DeniedWindow.D(), Anomaly: anomaly,
		KeyLife: keyLifeAlerts(g.cfg.KeyPolicy)}
	for _, w := range a.Webhooks {
		secret, err := w.Secret(e.getenv)
		if err != nil {
			return nil, &cliError{code: exitConfig, msg: err.Error()}
		}
		cfg.Webhooks = append(cfg.Webhooks, alerts.Webhook{URL: w.URL, Secret: secret})
	}
	return alerts.New(cfg, g.store, g.log), nil
}

// keyLifeAlerts is the part of key_policy the key_rotation_due and
// backup_overdue alerts need; the key job's audit events use the same.
func keyLifeAlerts(p config.KeyPolicy) alerts.KeyLifeConfig {
	return alerts.KeyLifeConfig{RotationWarning: p.Warning(), BackupMaxAge: p.Backup.MaxVerifiedAge(),
		SelfRotating: map[string]bool{ca.KeyClassOCSPResponder: true}}
}

// runAlerts starts the alert engine, when configured, until ctx ends; one
// replica at a time evaluates (job lock "alerts").
func runAlerts(ctx context.Context, e *env, g *engine) error {
	eng, err := alertEngine(e, g)
	if err != nil || eng == nil {
		return err
	}
	go eng.Run(ctx)
	return nil
}
