package discover

import (
	"context"
	"sync"

	"github.com/mica-pki/mica/inventory"
)

// Found is one certificate chain seen at one place. Chain[0] is the leaf
// (what a server presented first, or a file's first certificate).
type Found struct {
	Kind     string   // inventory.KindTLS or inventory.KindFile
	Location string   // "host:port" or "host:/path": the installation's key
	Chain    [][]byte // DER
}

// Sink receives a source's results. Sources call it from one goroutine
// at a time, so a Sink need not lock; it must honour ctx. An error from
// Found is reported back to Failed for that location and the run goes on.
type Sink interface {
	Found(ctx context.Context, f Found) error
	Failed(ctx context.Context, target string, err error)
}

// Source is a discovery source: Run pushes everything it finds to sink
// and returns an error only when it cannot go on at all (ctx done).
type Source interface {
	Run(ctx context.Context, sink Sink) error
}

// serialSink serialises calls into a Sink for concurrent sources.
type serialSink struct {
	mu   sync.Mutex
	sink Sink
}

func (s *serialSink) found(ctx context.Context, f Found) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sink.Found(ctx, f); err != nil {
		s.sink.Failed(ctx, f.Location, err)
	}
}

func (s *serialSink) failed(ctx context.Context, target string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sink.Failed(ctx, target, err)
}

// Recorder is the part of the inventory StoreSink writes to.
type Recorder interface {
	RecordSighting(ctx context.Context, sg inventory.Sighting) (*inventory.Discovered, error)
}

// maxJobErrors bounds what a job keeps of its failures (a /16 of closed
// ports would otherwise store 65,536 identical lines).
const maxJobErrors = 1000

// StoreSink records every chain as sightings in the inventory under a
// job and collects the failures as the job's data.
type StoreSink struct {
	Store Recorder
	JobID int64

	Certificates int // leaf certificates recorded
	External     int // of which MICA did not issue
	Errors       []inventory.JobError
	Dropped      int // failures beyond maxJobErrors, counted only
}

var _ Sink = (*StoreSink)(nil)

// Found records each certificate of the chain with its position.
func (s *StoreSink) Found(ctx context.Context, f Found) error {
	for i, der := range f.Chain {
		d, err := s.Store.RecordSighting(ctx, inventory.Sighting{DER: der, Kind: f.Kind, Location: f.Location, ChainPos: i, JobID: s.JobID})
		if err != nil {
			return err
		}
		if i == 0 {
			s.Certificates++
			if d.External {
				s.External++
			}
		}
	}
	return nil
}

// Failed keeps the failure as data on the job.
func (s *StoreSink) Failed(_ context.Context, target string, err error) {
	if len(s.Errors) >= maxJobErrors {
		s.Dropped++
		return
	}
	s.Errors = append(s.Errors, inventory.JobError{Target: target, Error: err.Error()})
}
