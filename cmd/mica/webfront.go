package main

import (
	"context"
	"os"
	"time"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/enroll"
	"github.com/mica-pki/mica/inventory/discover"
	"github.com/mica-pki/mica/server"
	"github.com/mica-pki/mica/web"
)

// webFrontEnd builds the admin API (web) and starts this replica's
// discovery-job poller, which runs jobs queued through the API, and its
// schedule ticker, which queues recurring scans when they are due; the
// store's conditional claims give each job and each due run to exactly
// one replica.
func webFrontEnd(ctx context.Context, g *engine) (server.Mounter, error) {
	r, err := discoveryRunner(&env{getenv: os.Getenv}, g.cfg)
	if err != nil {
		return nil, err
	}
	r.Store, r.Log = g.store, g.log
	every := time.Duration(g.cfg.Discovery.PollInterval)
	if every <= 0 {
		every = 5 * time.Second
	}
	go r.Poll(ctx, every)
	// Recurring scans: each replica ticks; the store's conditional claim
	// turns each due time into exactly one queued job, which the pollers
	// above then run. The allow-list is applied again at every run.
	sched := &discover.Scheduler{Store: g.store, Check: r.Check, Log: g.log}
	go sched.Poll(ctx, every)
	// EST tokens and EAB keys through the CLI's code paths (enroll,
	// acme); without the HSM-derived sealer EAB keys cannot be sealed: 503.
	var eab web.EABKeyAdmin
	if g.eabSealer != nil {
		eab = &acme.EABAdmin{Store: g.store, Sealer: g.eabSealer, Profiles: g.cfg.ACME.Profiles}
	}
	creds := &enroll.TokenAdmin{Store: g.store, Config: g.cfg.EST}
	return web.New(g.store, g.ca, g.log).WithJobChecker(r.Check).WithKeyReporter(&complianceReporter{store: g.store, cfg: g.cfg}).WithCredentials(creds, eab, g.ca).WithDenials(g.denials), nil
}
