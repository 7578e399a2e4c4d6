// Command yunxiao_exporter exports the latest runs of Alibaba Cloud DevOps
// (Yunxiao) Flow pipelines as Prometheus metrics.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/yunxiao-exporter/yunxiao_exporter/collector"
	"github.com/yunxiao-exporter/yunxiao_exporter/config"
	"github.com/yunxiao-exporter/yunxiao_exporter/flowsim"
	"github.com/yunxiao-exporter/yunxiao_exporter/landing"
	"github.com/yunxiao-exporter/yunxiao_exporter/logging"
	"github.com/yunxiao-exporter/yunxiao_exporter/webhook"
	"github.com/yunxiao-exporter/yunxiao_exporter/yunxiao"
)

const exporterName = "yunxiao_exporter"

func main() {
	info, _ := debug.ReadBuildInfo()
	fillVersion(info)
	// The heap is mostly a long-lived cache (every pipeline's rendered
	// series); the garbage is each fetch's decoding. Collecting at +50 %
	// rather than Go's +100 % keeps the peak near the cache's size for a
	// little CPU during refreshes (docs/performance.md has the figures), as
	// Prometheus itself runs at 75. GOGC in the environment wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil))
}

// run is the whole program: it parses args, serves until ctx ends (SIGTERM),
// then shuts down gracefully, and returns the exit code. Tests pass a
// listener; otherwise --web.listen-address is used.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ln net.Listener) int {
	app := kingpin.New(exporterName, "Prometheus exporter for Alibaba Cloud DevOps (Yunxiao) Flow pipelines.")
	var (
		configFile  = app.Flag("config.file", "Path to the configuration file.").Default("config.yml").String()
		configCheck = app.Flag("config.check", "Validate the configuration file, print what is wrong (file, line, key) and exit 0 or 1 without serving.").Bool()
		metricsPath = app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String()
		maxRequests = app.Flag("web.max-requests", "Maximum number of concurrent scrapes; more are answered 503.").Default("40").Int64()
		shardIndex  = app.Flag("shard.index", "This replica's shard, from 0, when --shard.total replicas split the pipelines by a stable hash of their id.").Default("0").Int()
		shardTotal  = app.Flag("shard.total", "Number of replicas splitting the pipelines; 1 is no sharding.").Default("1").Int()
		demo        = app.Flag("demo", "Serve and scrape a built-in simulated Flow API whose pipelines run, pass and fail in real time; no token or config needed.").Bool()
		webhookAddr = app.Flag("webhook.listen-address", "Serve the Flow webhook receiver (/webhook/flow) on this address alone, so it can be exposed while /metrics stays internal. Empty: on the main listener.").Default("").String()
		webhookWeb  = app.Flag("webhook.web-config.file", "exporter-toolkit web config for the webhook's own listener (TLS; basic auth only if Flow can send it). Empty: the same as --web.config.file.").Default("").String()
		webConfig   = kingpinflag.AddFlags(app, ":10036")
		logConfig   = promslog.Config{Writer: stderr}
	)
	promslogflag.AddFlags(app, &logConfig)
	app.Version(version.Print(exporterName))
	app.HelpFlag.Short('h')
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	// --help and --version end the program through Terminate; record the
	// code instead of exiting, so that run stays testable.
	exitCode := -1
	app.Terminate(func(code int) {
		if exitCode < 0 {
			exitCode = code
		}
	})
	_, err := app.Parse(args)
	if exitCode >= 0 {
		return exitCode
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", exporterName, err)
		return 2
	}
	if *configCheck {
		return checkConfig(*configFile, stdout, stderr)
	}
	shard := collector.Shard{Index: *shardIndex, Total: *shardTotal}
	if err := shard.Validate(); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", exporterName, err)
		return 2
	}

	// One handler formats every line: ours (through go-kit) and the
	// toolkit's (through slog) carry the same keys.
	slogger := promslog.New(&logConfig)
	logger := logging.GoKit(slogger.Handler())
	level.Info(logger).Log("msg", "starting "+exporterName, "version", version.Info(), "build_context", version.BuildContext())

	apiMetrics := yunxiao.NewMetrics()
	reg := newRegistry(apiMetrics, shard)
	safeConfig := config.NewSafeConfig(reg, config.LoadOptions{})
	coll := collector.New(collector.Options{Logger: logger, Shard: shard})
	defer coll.Close()
	reg.MustRegister(coll.DiscoveryMetrics())
	apply := func(cfg *config.Config) error {
		for _, w := range cfg.Warnings {
			level.Warn(logger).Log("msg", "config warning", "file", cfg.SourceFile, "warning", w)
		}
		return coll.ApplyConfig(cfg, apiMetrics)
	}

	var reload func() error
	if *demo {
		cfg, stopDemo, err := startDemo(logger)
		if err != nil {
			level.Error(logger).Log("msg", "cannot start the demo Flow API", "err", err)
			return 1
		}
		defer stopDemo()
		if err := apply(cfg); err != nil {
			level.Error(logger).Log("msg", "demo config refused", "err", err)
			return 1
		}
		safeConfig.Set(cfg)
		reload = func() error {
			err := errors.New("--demo has no config file to reload")
			level.Info(logger).Log("msg", "reload requested; nothing to reload", "reason", err)
			return err
		}
	} else {
		cfg, err := safeConfig.ReloadConfig(*configFile, apply)
		if err != nil {
			// There is no previous config to keep: say why we cannot start.
			level.Error(logger).Log("msg", "cannot start: the configuration is invalid", "file", *configFile, "err", err)
			return 1
		}
		level.Info(logger).Log("msg", "loaded config", "file", *configFile, "pipelines", len(cfg.Pipelines))
		reload = func() error {
			cfg, err := safeConfig.ReloadConfig(*configFile, apply)
			if err != nil {
				level.Error(logger).Log("msg", "error loading config; keeping the previous one", "err", err)
				return err
			}
			level.Info(logger).Log("msg", "reloaded config", "file", *configFile, "pipelines", len(cfg.Pipelines))
			return nil
		}
	}

	// SIGHUP and POST /-/reload take one path, so both behave the same and
	// the HTTP caller gets the error back.
	reloadCh := make(chan chan error)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				_ = reload()
			case rc := <-reloadCh:
				rc <- reload()
			case <-ctx.Done():
				return
			}
		}
	}()

	// Flow's webhook: an event only schedules a re-read of its pipeline from
	// the API; it is off until the config gives it a token.
	hook := webhook.New(ctx, webhook.Options{
		Token:       func() string { return safeConfig.Get().WebhookToken() },
		Refresher:   pipelineRefresher{coll},
		OnUnwatched: func(int64) { coll.RequestDiscovery() },
		Logger:      logger,
	})
	defer hook.Close()
	reg.MustRegister(hook)

	landingPage, err := landing.New(coll, landing.Config{Version: version.Version, MetricsPath: *metricsPath})
	if err != nil {
		level.Error(logger).Log("err", err)
		return 1
	}
	mux := newMux(muxConfig{
		metricsPath: *metricsPath,
		landing:     landingPage,
		metrics: coll.Handler(collector.HandlerOpts{
			Gatherer:            reg,
			MaxRequestsInFlight: *maxRequests,
			ErrorLog:            stdlibLogger{level.Error(logger)},
		}),
		reload: func(ctx context.Context) error {
			rc := make(chan error, 1)
			select {
			case reloadCh <- rc:
				return <-rc
			case <-ctx.Done():
				return ctx.Err()
			}
		},
		ready: func() bool { return safeConfig.Get() != nil },
	})
	if *webhookAddr == "" {
		mux.Handle(webhookPath, hook)
	}

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		level.Info(logger).Log("msg", "shutting down")
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	serve := func() error { return web.ListenAndServe(srv, webConfig, slogger) }
	if ln != nil {
		serve = func() error { return web.Serve(ln, srv, webConfig, slogger) }
	}
	serveErr := make(chan error, 2)
	if *webhookAddr != "" {
		hookMux := http.NewServeMux()
		hookMux.Handle(webhookPath, hook)
		hookSrv := &http.Server{Handler: hookMux, ReadHeaderTimeout: 10 * time.Second}
		hookWeb := *webConfig.WebConfigFile
		if *webhookWeb != "" {
			hookWeb = *webhookWeb
		}
		systemd := false
		hookFlags := &web.FlagConfig{WebListenAddresses: &[]string{*webhookAddr}, WebSystemdSocket: &systemd, WebConfigFile: &hookWeb}
		go func() {
			<-ctx.Done()
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = hookSrv.Shutdown(shutdownCtx)
		}()
		go func() { serveErr <- web.ListenAndServe(hookSrv, hookFlags, slogger) }()
	}
	go func() { serveErr <- serve() }()
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		level.Error(logger).Log("msg", "error running HTTP server", "err", err)
		return 1
	}
	return 0
}

// webhookPath is where Flow's webhook notifications are received.
const webhookPath = "/webhook/flow"

// pipelineRefresher lets the webhook receiver re-read one pipeline.
type pipelineRefresher struct{ c *collector.Collector }

func (r pipelineRefresher) Refresh(ctx context.Context, pipelineID int64) bool {
	return r.c.RefreshPipeline(ctx, pipelineID)
}

// newRegistry holds everything but the pipelines' metrics, which the
// collector's handler serves prebuilt beside it.
func newRegistry(apiMetrics *yunxiao.Metrics, shard collector.Shard) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	shardInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "yunxiao_exporter_shard_info",
		Help:        "This replica's share of the pipelines: it exports pipelines whose id hashes to shard_index modulo shard_total (0 of 1 when not sharded).",
		ConstLabels: prometheus.Labels{"shard_index": strconv.Itoa(shard.Index), "shard_total": strconv.Itoa(shard.Total)},
	})
	shardInfo.Set(1)
	reg.MustRegister(
		versioncollector.NewCollector(exporterName),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		apiMetrics,
		shardInfo,
	)
	return reg
}

type muxConfig struct {
	metricsPath string
	metrics     http.Handler
	landing     http.Handler
	reload      func(context.Context) error
	ready       func() bool
}

func newMux(c muxConfig) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(c.metricsPath, c.metrics)
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "Healthy") })
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !c.ready() {
			http.Error(w, "Not ready: no configuration loaded", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "Ready")
	})
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "This endpoint requires a POST request.", http.StatusMethodNotAllowed)
			return
		}
		if err := c.reload(r.Context()); err != nil {
			http.Error(w, "failed to reload config: "+err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "Config reloaded")
	})
	if c.metricsPath != "/" {
		mux.Handle("/", c.landing)
	}
	return mux
}

// checkConfig implements --config.check.
func checkConfig(path string, stdout, stderr io.Writer) int {
	cfg, err := config.LoadFile(path, config.LoadOptions{})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "%s: warning: %s\n", path, w)
	}
	fmt.Fprintf(stdout, "%s: OK: %d pipelines, %s edition, cache_ttl %s\n", path, len(cfg.Pipelines), cfg.Yunxiao.Edition, cfg.CacheTTL)
	return 0
}

// startDemo serves the simulated Flow API on a loopback port and returns a
// config pointing at it.
func startDemo(logger log.Logger) (*config.Config, func(), error) {
	const token, org = "pt-demo-token", "demo-organization"
	sim := flowsim.New(flowsim.Options{Token: token, OrganizationID: org}, flowsim.DemoPipelines()...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	level.Info(logger).Log("msg", "demo mode: serving a simulated Flow API", "address", ln.Addr().String())
	var b strings.Builder
	fmt.Fprintf(&b, "yunxiao:\n  endpoint: http://%s\n  organization_id: %s\n  token: %s\ncache_ttl: 10s\n", ln.Addr(), org, token)
	// The demo shows everything: run history, and discovery finding the
	// same pipelines the list names.
	b.WriteString("run_history: true\ndiscovery:\n  enabled: true\n  refresh_interval: 1m\n")
	// Owners and deployments, so that routing by team and the delivery
	// dashboard have something to show.
	b.WriteString(`  labels:
    - match: "(backend|frontend)-.*"
      labels: {team: web}
    - match: "backend-build|deploy-.*"
      deploy: true
    - match: "deploy-.*|release-.*"
      labels: {team: ops}
    - match: "nightly-.*|data-.*"
      labels: {team: data}
    - match: "移动端.*"
      labels: {team: mobile}
`)
	b.WriteString("pipelines:\n")
	for _, p := range flowsim.DemoPipelines() {
		fmt.Fprintf(&b, "  - id: %d\n", p.ID) // names come from GetPipeline
	}
	cfg, err := config.Load([]byte(b.String()), "<demo>", config.LoadOptions{Getenv: func(string) string { return "" }})
	if err != nil {
		_ = srv.Close()
		return nil, nil, err
	}
	return cfg, func() { _ = srv.Close() }, nil
}

// fillVersion fills what -ldflags left empty from the binary's own build
// information, so that `go build` and `go run` still name a version:
// the module version ("(devel)" for a local build), the VCS revision and
// its time. Fields set by ldflags win.
func fillVersion(info *debug.BuildInfo) {
	if info == nil {
		return
	}
	if version.Version == "" {
		version.Version = info.Main.Version
		if version.Version == "" {
			version.Version = "(devel)"
		}
	}
	var revision, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "-modified"
			}
		case "vcs.time":
			if version.BuildDate == "" {
				version.BuildDate = s.Value
			}
		}
	}
	if version.Revision == "" && revision != "" {
		version.Revision = revision + modified
	}
}

// stdlibLogger adapts go-kit's logger to promhttp's Println interface.
type stdlibLogger struct{ log.Logger }

func (l stdlibLogger) Println(v ...any) { l.Log("msg", fmt.Sprint(v...)) }
