package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// issuerReloader is the part of *ca.CA that SIGHUP drives.
type issuerReloader interface {
	// Reload re-reads the issuing CAs from the store; safe to call
	// concurrently with issuance.
	Reload(ctx context.Context) error
}

// watchHangup makes SIGHUP re-read the issuing CAs at once, so a rotation
// scheduled elsewhere (`mica ca rotate --at` on another host, a key job on
// another replica) is known here without waiting for the issuer watch's
// next tick; the switch itself still happens at the activation time. The
// handler is installed before watchHangup returns, so a SIGHUP sent after
// serve logged "serving" never falls through to the default action (exit).
// The goroutine ends with ctx.
func watchHangup(ctx context.Context, c issuerReloader, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := c.Reload(ctx); err != nil {
					log.Warn("re-reading the issuing CAs on SIGHUP failed", "err", err)
					continue
				}
				log.Info("issuing CAs re-read on SIGHUP")
			}
		}
	}()
}
