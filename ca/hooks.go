package ca

import (
	"fmt"
	"os"
	"time"
)

// Crash points for tests that prove "committed before returned". Test-only:
// nothing in production sets them.
const (
	crashAfterSign   = "after-sign"   // signed, not yet committed: the store must show "requested"
	crashAfterCommit = "after-commit" // committed, not yet returned: the store must show "issued"

	// crashEnv names the environment variable that makes a process kill
	// itself (SIGKILL, no deferred cleanup, like a power cut) at one of the
	// crash points. It exists for crash tests that run
	// `MICA_TEST_CRASH_AT=after-sign mica cert issue …` and then inspect the
	// store; it is read once, in New. Never set it in production.
	// "POINT:PROTOCOL" (after-commit:acme) kills only in an issuance for
	// that protocol, so a server can start (it issues its own TLS
	// certificate) and die in the middle of, say, an ACME finalize.
	crashEnv = "MICA_TEST_CRASH_AT"

	// stallPrefix ("stall:after-sign") makes the process stop at the point
	// instead of dying: it writes stallMarker and the point to stderr and
	// waits, so a test can SIGKILL it from outside exactly there (a random
	// kill lands in the few milliseconds of an issuance only by luck).
	stallPrefix = "stall:"
	stallMarker = "MICA_TEST_STALLED"
)

// testHooks are in-process hooks for unit tests, called at the crash
// points. They live on the CA (set before it is shared), so parallel tests
// with different CAs do not see each other's hooks.
type testHooks struct {
	afterSign   func()
	afterCommit func()

	// crlBatch replaces time.After for the CRL batching delay, so a test
	// decides when a batch closes (an explicit barrier, not a race
	// between the burst and the delay).
	crlBatch func(d time.Duration) <-chan time.Time
}

// batchTimer is time.After(d) unless a test holds the CRL batch open.
func (r *revoker) batchTimer(d time.Duration) <-chan time.Time {
	if h := r.ca.hooks.crlBatch; h != nil {
		return h(d)
	}
	return time.After(d)
}

// crashPoint runs the test hook for point and, if MICA_TEST_CRASH_AT names
// point (alone or with protocol), kills the process.
func (c *CA) crashPoint(point, protocol string) {
	hook := c.hooks.afterSign
	if point == crashAfterCommit {
		hook = c.hooks.afterCommit
	}
	if hook != nil {
		hook()
	}
	if c.crashAt == stallPrefix+point {
		fmt.Fprintf(os.Stderr, "%s %s\n", stallMarker, point)
		time.Sleep(time.Minute)
		return
	}
	if c.crashAt != point && c.crashAt != point+":"+protocol {
		return
	}
	c.log.Error("test crash point reached: killing the process", "env", crashEnv, "point", point)
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		_ = p.Kill() // SIGKILL on Unix
	}
	os.Exit(99) // where Kill is not immediate or not possible
}
