package alerts

import "time"

// SetClock replaces e's clock for tests.
func SetClock(e *Engine, now func() time.Time) { e.now = now }
