package main

import (
	"context"

	"github.com/mica-pki/mica/alerts"
)

// alertEngine builds the webhook alert engine from the alerts section of
// mica.yaml, or returns nil when no webhook is configured. A secret that
// cannot be read is a configuration error: serve refuses to start rather
// than run without the alerts the operator asked for.
func alertEngine(e *env, g *engine) (*alerts.Engine, error) {
	a := g.cfg.Alerts
	if len(a.Webhooks) == 0 {
		return nil, nil
	}
	cfg := alerts.Config{Interval: a.Interval.D(), RenewalWindow: a.RenewalWindow.D(), ExpiryWindow: a.ExpiryWindow.D(),
		RepeatAfter: a.RepeatAfter.D(), DeniedBurst: a.DeniedBurst, DeniedWindow: a.DeniedWindow.D()}
	for _, w := range a.Webhooks {
		secret, err := w.Secret(e.getenv)
		if err != nil {
			return nil, &cliError{code: exitConfig, msg: err.Error()}
		}
		cfg.Webhooks = append(cfg.Webhooks, alerts.Webhook{URL: w.URL, Secret: secret})
	}
	return alerts.New(cfg, g.store, g.log), nil
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
