package server

import (
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// serverMetrics are the metrics an admin's dashboard shows beside the
// HTTP ones (docs/operations.md, "Metrics"; contrib/grafana).
type serverMetrics struct {
	events *prometheus.CounterVec
}

// gaugeSource is what the scrape-time gauges read.
type gaugeSource interface {
	ServerGauges(ctx context.Context, serverName string) (store.ServerGauges, error)
	PoolStats() map[string]sql.DBStats
}

// registerServerMetrics registers the server's own metrics on reg: a
// counter of persisted events fed by the bus (one atomic add per event),
// and gauges read when Prometheus scrapes. backlogs are the background
// workers' counts of work not yet done, by worker name.
func registerServerMetrics(reg prometheus.Registerer, changes bus.Bus, db gaugeSource, waiting func() int, backlogs map[string]func() int64, serverName string, log *slog.Logger) {
	m := &serverMetrics{events: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "myelin_events_persisted_total",
		Help: "Room events stored, by origin: local (sent by this server's users) or remote (received over federation).",
	}, []string{"origin"})}
	local, remote := m.events.WithLabelValues("local"), m.events.WithLabelValues("remote")
	suffix := ":" + serverName
	changes.Subscribe("metrics", func(_ context.Context, c bus.Change) {
		n, ok := c.(rooms.Notification)
		if !ok || n.Event == nil {
			return
		}
		if strings.HasSuffix(string(n.Event.SenderID()), suffix) {
			local.Inc()
		} else {
			remote.Inc()
		}
	}, rooms.TopicEvent)
	reg.MustRegister(m.events,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "myelin_sync_long_polls", Help: "/sync requests waiting for news now.",
		}, func() float64 { return float64(waiting()) }),
		&gaugeCollector{db: db, serverName: serverName, log: log, ttl: 30 * time.Second})
	// What a worker has yet to do tells an admin it falls behind, and
	// tells a benchmark when the work its setup caused is done.
	for worker, backlog := range backlogs {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "myelin_background_backlog",
			Help:        "Work a background worker has yet to do: events to evaluate for push, stream positions to index for search.",
			ConstLabels: prometheus.Labels{"worker": worker},
		}, func() float64 { return float64(backlog()) }))
	}
}

var (
	descUsers      = prometheus.NewDesc("myelin_users", "Local accounts that are not deactivated.", nil, nil)
	descRooms      = prometheus.NewDesc("myelin_rooms", "Rooms this server holds.", nil, nil)
	descQueued     = prometheus.NewDesc("myelin_federation_queued", "Events (pdu) and EDUs (edu) waiting in the federation queue.", []string{"kind"}, nil)
	descFailing    = prometheus.NewDesc("myelin_federation_failing_destinations", "Servers whose last delivery failed.", nil, nil)
	descMedia      = prometheus.NewDesc("myelin_media_bytes", "Media stored, by origin (local uploads, remote copies).", []string{"origin"}, nil)
	descPoolInUse  = prometheus.NewDesc("myelin_db_connections_in_use", "Database connections in use, by pool.", []string{"pool"}, nil)
	descPoolIdle   = prometheus.NewDesc("myelin_db_connections_idle", "Idle database connections, by pool.", []string{"pool"}, nil)
	descPoolWaits  = prometheus.NewDesc("myelin_db_waits_total", "Times a query waited for a free connection, by pool.", []string{"pool"}, nil)
	descPoolWaited = prometheus.NewDesc("myelin_db_wait_seconds_total", "Time spent waiting for a free connection, by pool.", []string{"pool"}, nil)
)

// gaugeCollector reads the counts from the database at most once per
// ttl: a dashboard scraping every few seconds must not turn into a
// stream of COUNT(*) queries. The pool statistics are read every time
// (they are in memory).
type gaugeCollector struct {
	db         gaugeSource
	serverName string
	log        *slog.Logger
	ttl        time.Duration

	mu   sync.Mutex
	at   time.Time
	last store.ServerGauges
	ok   bool
}

func (g *gaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUsers, descRooms, descQueued, descFailing, descMedia, descPoolInUse, descPoolIdle, descPoolWaits, descPoolWaited} {
		ch <- d
	}
}

func (g *gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	if time.Since(g.at) > g.ttl {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		v, err := g.db.ServerGauges(ctx, g.serverName)
		cancel()
		g.at = time.Now()
		if err != nil {
			g.log.Warn("metrics: reading counts", "err", err)
		} else {
			g.last, g.ok = v, true
		}
	}
	v, ok := g.last, g.ok
	g.mu.Unlock()
	if ok {
		gauge := func(d *prometheus.Desc, n int64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n), labels...)
		}
		gauge(descUsers, v.Users)
		gauge(descRooms, v.Rooms)
		gauge(descQueued, v.QueuedPDUs, "pdu")
		gauge(descQueued, v.QueuedEDUs, "edu")
		gauge(descFailing, v.FailingDestinations)
		gauge(descMedia, v.LocalMediaBytes, "local")
		gauge(descMedia, v.RemoteMediaBytes, "remote")
	}
	for pool, st := range g.db.PoolStats() {
		ch <- prometheus.MustNewConstMetric(descPoolInUse, prometheus.GaugeValue, float64(st.InUse), pool)
		ch <- prometheus.MustNewConstMetric(descPoolIdle, prometheus.GaugeValue, float64(st.Idle), pool)
		ch <- prometheus.MustNewConstMetric(descPoolWaits, prometheus.CounterValue, float64(st.WaitCount), pool)
		ch <- prometheus.MustNewConstMetric(descPoolWaited, prometheus.CounterValue, st.WaitDuration.Seconds(), pool)
	}
}
