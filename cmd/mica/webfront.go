package main

import (
	"context"
	"os"
	"time"

	"github.com/mica-pki/mica/server"
	"github.com/mica-pki/mica/web"
)

// webFrontEnd builds the admin API (web) and starts this replica's
// discovery-job poller, which runs jobs queued through the API; the
// store's conditional claim gives each job to exactly one replica.
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
	return web.New(g.store, g.ca, g.log).WithJobChecker(r.Check), nil
}
