package metrics

import "time"

// SetClock replaces c's clock for tests.
func SetClock(c *StoreCollector, now func() time.Time) { c.now = now }
