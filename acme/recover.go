package acme

import (
	"context"
	"errors"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// Validations survive restarts. A challenge is "processing" from the
// moment a client asks for validation until a worker records the outcome;
// if the replica that queued it stops in between, the challenge would be
// stuck. Every replica therefore sweeps, at start and every
// recoverInterval, for processing challenges whose authorization is older
// than recoverAfter and re-queues them.
//
// Claiming is a pair of compare-and-set transitions, processing → pending
// → processing: of several replicas sweeping at once exactly one wins the
// first step, and a client that POSTs the challenge in between simply
// queues it itself. Taking over a validation that was in fact still
// running elsewhere costs one duplicate check; whichever worker records
// first decides, the other's write is a conflict.
const (
	recoverInterval = time.Minute
	recoverAfter    = 2 * time.Minute
)

// recoverLoop runs recoverValidations at start and then periodically
// until ctx ends.
func (s *Server) recoverLoop(ctx context.Context) {
	t := time.NewTicker(recoverInterval)
	defer t.Stop()
	for {
		if n, err := s.recoverValidations(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("acme: re-queuing stuck validations", "err", err)
		} else if n > 0 {
			s.log.Info("acme: re-queued validations left processing", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// recoverValidations claims and queues stuck challenges and returns how
// many it queued.
func (s *Server) recoverValidations(ctx context.Context) (int, error) {
	zs, err := s.store.ACMEAuthzs(ctx, inventory.ACMEAuthzFilter{Status: statusPending, ChallengeStatus: statusProcessing})
	if err != nil {
		return 0, err
	}
	now := s.now()
	n := 0
	for _, z := range zs {
		if now.Sub(z.CreatedAt) < recoverAfter || now.After(z.Expires) {
			continue
		}
		for _, c := range z.Challenges {
			if c.Status != statusProcessing {
				continue
			}
			ok, err := s.requeue(ctx, z, c)
			if err != nil {
				return n, err
			}
			if ok {
				n++
			}
		}
	}
	return n, nil
}

// requeue claims one challenge and queues it; false when another replica
// or the client got there first.
func (s *Server) requeue(ctx context.Context, z inventory.ACMEAuthz, c inventory.ACMEChallenge) (bool, error) {
	acct, err := s.store.ACMEAccount(ctx, inventory.ACMEAccountFilter{ID: z.AccountID})
	if errors.Is(err, inventory.ErrNotFound) {
		s.log.Warn("acme: a stuck challenge's account is gone; leaving it", "challenge", c.ID, "account", z.AccountID)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, step := range [][2]string{{statusProcessing, statusPending}, {statusPending, statusProcessing}} {
		err := s.store.UpdateACMEChallenge(ctx, c.ID, []string{step[0]}, inventory.ACMEChallengeUpdate{Status: step[1]})
		if errors.Is(err, inventory.ErrConflict) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	c.Status = statusProcessing
	// Which ACME directory the challenge came through, and so the
	// account URL and the CAA identities, is not recorded; the job runs
	// without a validation-time CAA check. Finalize checks CAA for every
	// identifier with the client's account URL, so nothing is issued
	// unchecked.
	j := job{authz: z, chall: c, keyAuth: c.Token + "." + acct.Thumbprint, done: make(chan struct{})}
	if !s.val.enqueue(j) {
		_ = s.store.UpdateACMEChallenge(ctx, c.ID, []string{statusProcessing}, inventory.ACMEChallengeUpdate{Status: statusPending})
		return false, nil
	}
	return true, nil
}
