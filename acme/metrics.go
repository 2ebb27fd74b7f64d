package acme

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the ACME server's Prometheus collectors. They count what
// this replica did; sum over replicas for the service.
type metrics struct {
	orders      *prometheus.CounterVec // by status entered
	validations *prometheus.CounterVec // by challenge type and result
	problems    *prometheus.CounterVec // by ACME error type
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mica_acme_orders_total",
			Help: "ACME orders entering each status (pending on creation, then ready, processing, valid, invalid)."}, []string{"status"}),
		validations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mica_acme_validations_total",
			Help: "ACME challenge validations finished, by challenge type and result (valid, or the problem type)."}, []string{"type", "result"}),
		problems: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mica_acme_problems_total",
			Help: "ACME problem documents sent to clients, by error type."}, []string{"type"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.orders, m.validations, m.problems} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) order(status string) { m.orders.WithLabelValues(status).Inc() }

func (m *metrics) validation(typ string, p *Problem) {
	result := statusValid
	if p != nil {
		result = shortProblem(p.Type)
	}
	m.validations.WithLabelValues(typ, result).Inc()
}

func (m *metrics) problem(p *Problem) { m.problems.WithLabelValues(shortProblem(p.Type)).Inc() }

// shortProblem drops the ACME error namespace: "badNonce", "caa".
func shortProblem(t string) string { return strings.TrimPrefix(t, errNS) }
