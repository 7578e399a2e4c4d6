package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/yunxiao-exporter/yunxiao_exporter/collector"
	"github.com/yunxiao-exporter/yunxiao_exporter/config"
	"github.com/yunxiao-exporter/yunxiao_exporter/webhook"
	"github.com/yunxiao-exporter/yunxiao_exporter/yunxiao"
)

// Step is the scrape interval of every scenario, and its promtool
// interval and evaluation_interval.
const Step = time.Minute

// ExporterJob is the scrape job of the exporters, as the rules select it.
const ExporterJob = "yunxiao-exporter"

// Clock is the fake clock a scenario's exporters and API share.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *Clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// sampleKind is what a series has at one step.
type sampleKind uint8

const (
	absent sampleKind = iota // no sample
	stale                    // a staleness marker
	value
)

type sample struct {
	kind sampleKind
	v    float64
}

// series is one recorded series.
type series struct {
	name    string
	labels  []labelPair // job and instance first, then the rest sorted
	target  int         // index of the target that first produced it
	samples []sample    // by step
}

type labelPair struct{ name, value string }

func (s *series) String() string {
	var b strings.Builder
	b.WriteString(s.name)
	b.WriteByte('{')
	for i, l := range s.labels {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(l.name)
		b.WriteString("=")
		b.WriteString(strconv.Quote(l.value))
	}
	b.WriteByte('}')
	return b.String()
}

// Recorder runs a scenario's script: it scrapes every target once per Step
// of the fake clock and records what Prometheus would store.
type Recorder struct {
	clock   *Clock
	origin  time.Time
	api     *FlowAPI
	tmp     string
	step    int // the step about to be scraped
	targets []*Target
	series  map[string]*series
	err     error
}

func newRecorder(origin time.Duration) (*Recorder, error) {
	tmp, err := os.MkdirTemp("", "yunxiao-record-")
	if err != nil {
		return nil, err
	}
	o := time.Unix(0, 0).UTC().Add(origin)
	clock := &Clock{t: o}
	return &Recorder{clock: clock, origin: o, api: newFlowAPI(clock, o), tmp: tmp, series: map[string]*series{}}, nil
}

func (r *Recorder) close() {
	for _, t := range r.targets {
		if t.proc != nil {
			t.proc.close()
		}
	}
	r.api.Close()
	_ = os.RemoveAll(r.tmp)
}

// fail records the first error of the script.
func (r *Recorder) fail(err error) {
	if r.err == nil && err != nil {
		r.err = err
	}
}

// API is the scenario's Flow API.
func (r *Recorder) API() *FlowAPI { return r.api }

// RunTo scrapes every target at each minute from the current one up to,
// not including, minute.
func (r *Recorder) RunTo(minute int) {
	for ; r.step < minute; r.step++ {
		now := r.origin.Add(time.Duration(r.step) * Step)
		r.clock.set(now)
		for i, t := range r.targets {
			r.scrape(i, t, now)
		}
	}
	r.clock.set(r.origin.Add(time.Duration(r.step) * Step))
}

// ExporterSpec is how an exporter process is started.
type ExporterSpec struct {
	Token string // default "pt-recorder"; made valid at the API
	// Config is the config file after its yunxiao: section (which the
	// recorder writes: the API's address, the organization, Token, no rate
	// limit), e.g. "run_history: true\npipelines:\n  - id: 1\n".
	Config string
	Shard  collector.Shard
}

// targetState is what Prometheus gets from a target.
type targetState int

const (
	targetUp          targetState = iota // scraped
	targetUnreachable                    // in service discovery, scrapes fail (up 0)
	targetGone                           // removed from service discovery
)

// Target is one scrape target: an exporter process (or, for another job,
// nothing but its up).
type Target struct {
	r        *Recorder
	job      string
	instance string
	spec     ExporterSpec
	proc     *process // nil when stopped, or for a foreign target
	foreign  bool
	state    targetState
	missNext bool
	prev     map[string]bool // series of the last successful scrape
	gone     bool            // staleness markers written after removal
}

// Exporter starts an exporter process and adds its target (job
// yunxiao-exporter); it is scraped from the current minute on.
func (r *Recorder) Exporter(instance string, spec ExporterSpec) *Target {
	t := &Target{r: r, job: ExporterJob, instance: instance, spec: spec, prev: map[string]bool{}}
	r.targets = append(r.targets, t)
	t.start()
	return t
}

// Foreign adds a target of another job, such as a blackbox probe of the
// API: only its up is recorded. It answers when up is true.
func (r *Recorder) Foreign(job, instance string, up bool) *Target {
	t := &Target{r: r, job: job, instance: instance, foreign: true, prev: map[string]bool{}}
	if !up {
		t.state = targetUnreachable
	}
	r.targets = append(r.targets, t)
	return t
}

func (t *Target) start() {
	p, err := startProcess(t.r, t.instance, t.spec)
	t.r.fail(err)
	t.proc = p
}

// Stop stops the process; the target stays, so its scrapes fail (up 0).
func (t *Target) Stop() {
	if t.proc != nil {
		t.proc.close()
		t.proc = nil
	}
	t.state = targetUnreachable
}

// Start starts a new process for a stopped (or running) target: a fresh
// exporter, counters born again.
func (t *Target) Start() {
	t.Stop()
	t.start()
	t.state = targetUp
}

// Restart restarts the process in place (same instance) between two
// scrapes, optionally with another spec.
func (t *Target) Restart(spec ...ExporterSpec) {
	if len(spec) > 0 {
		t.spec = spec[0]
	}
	t.Start()
}

// Remove removes the target from service discovery (a pod deleted in a
// rollout): Prometheus writes staleness markers at the next scrape time.
func (t *Target) Remove() {
	if t.proc != nil {
		t.proc.close()
		t.proc = nil
	}
	t.state = targetGone
}

// Unreachable makes the scrapes fail (or work again) while the process
// keeps running: a network partition, a hung process.
func (t *Target) Unreachable(on bool) {
	if on {
		t.state = targetUnreachable
	} else {
		t.state = targetUp
	}
}

// MissScrape makes the next scrape fail (a timeout or a network blip); the
// process does not see it.
func (t *Target) MissScrape() { t.missNext = true }

// Webhook POSTs a Flow webhook event for the pipeline to the exporter's
// /webhook/flow?token=<token>, as Flow's webhook plugin does, at the
// current minute (before its scrape), and returns the answer's status. An
// accepted event (202) refreshes the pipeline before the scrape, as the
// receiver's refresh would within the second.
func (t *Target) Webhook(pipelineID int64, token string) int {
	if t.proc == nil {
		t.r.fail(fmt.Errorf("%s: no process to send a webhook event to", t.instance))
		return 0
	}
	code, err := t.proc.webhook(pipelineID, token)
	t.r.fail(err)
	return code
}

// Reload writes a new config file body (after the yunxiao: section) or, if
// raw, the whole file, and reloads it as SIGHUP does; it returns the
// reload error, if any.
func (t *Target) Reload(body string, raw bool) error {
	if t.proc == nil {
		return fmt.Errorf("%s: no process to reload", t.instance)
	}
	return t.proc.reload(body, raw)
}

func (r *Recorder) record(key, name string, labels []labelPair, target int, s sample) {
	se := r.series[key]
	if se == nil {
		se = &series{name: name, labels: labels, target: target}
		r.series[key] = se
	}
	for len(se.samples) < r.step {
		se.samples = append(se.samples, sample{})
	}
	if len(se.samples) == r.step {
		se.samples = append(se.samples, s)
	} else {
		se.samples[r.step] = s
	}
}

func (t *Target) labels() []labelPair {
	return []labelPair{{"job", t.job}, {"instance", t.instance}}
}

func seriesKey(name string, labels []labelPair) string {
	var b strings.Builder
	b.WriteString(name)
	for _, l := range labels {
		b.WriteByte(0)
		b.WriteString(l.name)
		b.WriteByte(1)
		b.WriteString(l.value)
	}
	return b.String()
}

// scrape is one scrape of target i at now, as Prometheus records it:
// every series of a successful scrape, a staleness marker for each series
// of the previous successful scrape that is not in it (or for all of them
// when the scrape fails or the target has gone), and up.
func (r *Recorder) scrape(i int, t *Target, now time.Time) {
	if t.gone {
		return
	}
	upLabels := t.labels()
	upKey := seriesKey("up", upLabels)
	markStale := func(keep map[string]bool) {
		for k := range t.prev {
			if !keep[k] {
				r.record(k, "", nil, i, sample{kind: stale})
			}
		}
	}
	if t.state == targetGone {
		markStale(nil)
		r.record(upKey, "up", upLabels, i, sample{kind: stale})
		t.prev, t.gone = nil, true
		return
	}
	ok := t.state == targetUp && !t.missNext
	t.missNext = false
	var got map[string]bool
	if ok && !t.foreign {
		if t.proc == nil {
			ok = false
		} else {
			families, err := t.proc.scrape(now)
			if err != nil {
				r.fail(fmt.Errorf("minute %d: scraping %s: %w", r.step, t.instance, err))
				return
			}
			got = map[string]bool{}
			for _, m := range flatten(families, t.labels()) {
				if !ruleMetric[m.name] {
					continue
				}
				key := seriesKey(m.name, m.labels)
				got[key] = true
				r.record(key, m.name, m.labels, i, sample{kind: value, v: m.v})
			}
		}
	}
	markStale(got)
	t.prev = got
	up := 0.0
	if ok {
		up = 1
	}
	r.record(upKey, "up", upLabels, i, sample{kind: value, v: up})
}

type flatMetric struct {
	name   string
	labels []labelPair
	v      float64
}

// flatten turns parsed families into samples, as Prometheus ingests them:
// a histogram is its _bucket, _sum and _count series, a summary its
// quantiles, _sum and _count; a label with an empty value is dropped (an
// empty value is no label: yunxiao_pipeline_info's group="" of a pipeline
// without Flow groups); the target's job and instance are added, and a
// label of the same name from the exporter is kept as exported_<name>.
func flatten(families map[string]*dto.MetricFamily, target []labelPair) []flatMetric {
	var out []flatMetric
	add := func(name string, m *dto.Metric, v float64, extra ...labelPair) {
		var ls []labelPair
		for _, l := range m.GetLabel() {
			if l.GetValue() == "" {
				continue // Prometheus stores no label with an empty value
			}
			n := l.GetName()
			for _, tl := range target {
				if tl.name == n {
					n = "exported_" + n
				}
			}
			ls = append(ls, labelPair{n, l.GetValue()})
		}
		ls = append(ls, extra...)
		sort.Slice(ls, func(i, j int) bool { return ls[i].name < ls[j].name })
		out = append(out, flatMetric{name: name, labels: append(append([]labelPair{}, target...), ls...), v: v})
	}
	names := make([]string, 0, len(families))
	for n := range families {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		mf := families[n]
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				add(n, m, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				add(n, m, m.GetGauge().GetValue())
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					add(n+"_bucket", m, float64(b.GetCumulativeCount()), labelPair{"le", formatLe(b.GetUpperBound())})
				}
				add(n+"_bucket", m, float64(h.GetSampleCount()), labelPair{"le", "+Inf"})
				add(n+"_sum", m, h.GetSampleSum())
				add(n+"_count", m, float64(h.GetSampleCount()))
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.GetQuantile() {
					add(n, m, q.GetValue(), labelPair{"quantile", formatLe(q.GetQuantile())})
				}
				add(n+"_sum", m, s.GetSampleSum())
				add(n+"_count", m, float64(s.GetSampleCount()))
			default:
				add(n, m, m.GetUntyped().GetValue())
			}
		}
	}
	return out
}

// formatLe writes a bucket bound as Prometheus 3 stores it (1 as "1.0").
func formatLe(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eInN") {
		s += ".0"
	}
	return s
}

// process is one exporter process: what main.go wires, on the fake clock.
type process struct {
	r       *Recorder
	coll    *collector.Collector
	metrics *yunxiao.Metrics
	safe    *config.SafeConfig
	handler http.Handler
	hook    *webhook.Receiver
	cfgPath string
	token   string
	client  *yunxiao.Client
	// nextDiscovery is when the discovery loop runs next on the fake
	// clock; zero: at the next scrape (start, reload).
	nextDiscovery time.Time
	// accepted is the last event the webhook accepted: when, on the
	// wall clock and on the fake one (see webhookTime).
	accepted *acceptedEvent
}

type acceptedEvent struct {
	wallFrom, wallTo time.Time // the wall clock around the POST
	at               time.Time // the fake clock
}

// noRefresh is the webhook receiver's Refresher: the recorder refreshes
// an accepted event's pipeline itself, synchronously (process.webhook).
type noRefresh struct{}

func (noRefresh) Refresh(context.Context, int64) bool { return true }

func (r *Recorder) configFile(instance, token, body string) (string, error) {
	yml := fmt.Sprintf("yunxiao:\n  endpoint: %s\n  organization_id: %s\n  token: %s\n  rate_limit: 0\n%s",
		r.api.srv.URL, orgID, token, body)
	path := filepath.Join(r.tmp, strings.NewReplacer(":", "_", "/", "_").Replace(instance)+".yml")
	return path, os.WriteFile(path, []byte(yml), 0o600)
}

// startProcess wires an exporter as main.go does: the client's metrics
// and the shard info in a registry, a SafeConfig whose reload gauges live
// there, the collector with its discovery metrics beside it, the webhook
// receiver (enabled by the config's webhook token) with its metrics, and
// the collector's /metrics handler over the registry. Differences, for a
// deterministic recording on a fake clock: the client retries after 1ms
// instead of 500ms (the count of retries is the same), discovery runs when
// the recorder says (Discover, at start, after a reload and every
// refresh_interval of the fake clock) instead of on a wall-clock timer, an
// accepted webhook event's refresh runs before the next scrape instead of
// on the receiver's goroutine, the receiver's last-accepted time is moved
// from the wall clock to the fake one (webhookTime), and the Go and process
// collectors are left out (the rules read neither).
func startProcess(r *Recorder, instance string, spec ExporterSpec) (*process, error) {
	if spec.Token == "" {
		spec.Token = "pt-recorder"
	}
	r.api.Token(spec.Token)
	if spec.Shard.Total == 0 {
		spec.Shard = collector.Shard{Index: 0, Total: 1}
	}
	metrics := yunxiao.NewMetrics()
	reg := prometheus.NewRegistry()
	shardInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "yunxiao_exporter_shard_info",
		Help:        "This replica's share of the pipelines.",
		ConstLabels: prometheus.Labels{"shard_index": strconv.Itoa(spec.Shard.Index), "shard_total": strconv.Itoa(spec.Shard.Total)},
	})
	shardInfo.Set(1)
	reg.MustRegister(metrics, shardInfo)
	p := &process{r: r, metrics: metrics, token: spec.Token}
	p.safe = config.NewSafeConfig(reg, config.LoadOptions{Getenv: func(string) string { return "" }})
	p.coll = collector.New(collector.Options{Now: r.clock.Now, Shard: spec.Shard, ManualDiscovery: true})
	reg.MustRegister(p.coll.DiscoveryMetrics())
	p.hook = webhook.New(context.Background(), webhook.Options{
		Token:     func() string { return p.safe.Get().WebhookToken() },
		Refresher: noRefresh{},
	})
	reg.MustRegister(p.hook)
	p.handler = p.coll.Handler(collector.HandlerOpts{Gatherer: reg})
	var err error
	p.cfgPath, err = r.configFile(instance, spec.Token, spec.Config)
	if err != nil {
		return nil, err
	}
	if _, err := p.safe.ReloadConfig(p.cfgPath, p.apply); err != nil {
		return nil, fmt.Errorf("%s: %w", instance, err)
	}
	return p, nil
}

// apply installs a loaded config as ApplyConfig does (the new client
// inherits the old one's 429 pauses and limits; SetAPI closes the old).
func (p *process) apply(cfg *config.Config) error {
	opts := cfg.ClientOptions()
	opts.RetryBackoff = time.Millisecond
	opts.Previous = p.client
	client, err := yunxiao.New(opts, p.metrics)
	if err != nil {
		return err
	}
	if err := p.coll.SetAPI(client, cfg); err != nil {
		return err
	}
	p.client = client
	p.nextDiscovery = time.Time{} // the new config's discovery runs at once
	return nil
}

func (p *process) reload(body string, raw bool) error {
	yml := body
	if !raw {
		yml = fmt.Sprintf("yunxiao:\n  endpoint: %s\n  organization_id: %s\n  token: %s\n  rate_limit: 0\n%s",
			p.r.api.srv.URL, orgID, p.token, body)
	}
	if err := os.WriteFile(p.cfgPath, []byte(yml), 0o600); err != nil {
		return err
	}
	_, err := p.safe.ReloadConfig(p.cfgPath, p.apply)
	return err
}

// discoverDue runs a discovery when the exporter's loop would: at start,
// after a reload, and every refresh_interval.
func (p *process) discoverDue(now time.Time) {
	cfg := p.safe.Get()
	if cfg == nil || !cfg.Discovery.Enabled || now.Before(p.nextDiscovery) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = p.coll.Discover(ctx)
	p.nextDiscovery = now.Add(time.Duration(cfg.Discovery.RefreshInterval))
}

func (p *process) scrape(now time.Time) (map[string]*dto.MetricFamily, error) {
	p.discoverDue(now)
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	req.Header.Set(collector.ScrapeTimeoutHeader, "10")
	rec := httptest.NewRecorder()
	p.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("/metrics answered %d: %s", rec.Code, rec.Body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		return nil, err
	}
	return families, p.webhookTime(families)
}

// webhookEvent is the body of the events the recorder sends: Flow's
// documented payload.
const webhookEvent = `{"event":"task","action":"status",
 "task":{"pipelineId":%d,"pipelineName":"pipeline","stageName":"Build","taskName":"Build",
  "buildNumber":1,"statusCode":"SUCCESS","statusName":"运行成功",
  "pipelineUrl":"https://flow.aliyun.com/pipelines/%d/current","message":""},
 "sources":[],"globalParams":[]}`

// webhook POSTs an event to the receiver; see Target.Webhook.
func (p *process) webhook(pipelineID int64, token string) (int, error) {
	body := fmt.Sprintf(webhookEvent, pipelineID, pipelineID)
	req := httptest.NewRequest(http.MethodPost, "/webhook/flow?token="+token, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	from := time.Now()
	p.hook.ServeHTTP(rec, req)
	if rec.Code == http.StatusAccepted {
		p.accepted = &acceptedEvent{wallFrom: from, wallTo: time.Now(), at: p.r.clock.Now()}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p.coll.RefreshPipeline(ctx, pipelineID)
	}
	return rec.Code, nil
}

// webhookTime moves yunxiao_webhook_last_accepted_timestamp_seconds from
// the wall clock, on which the receiver stamps it (it has no clock
// option), to the fake clock: the value must be the wall-clock time of the
// last event the receiver accepted (checked, to the millisecond), and
// becomes that event's fake-clock time, computed as the receiver computes
// it. No other value is touched.
func (p *process) webhookTime(families map[string]*dto.MetricFamily) error {
	const name = "yunxiao_webhook_last_accepted_timestamp_seconds"
	mf := families[name]
	if mf == nil {
		return nil
	}
	for _, m := range mf.GetMetric() {
		g := m.GetGauge()
		v := g.GetValue()
		a := p.accepted
		if a == nil {
			return fmt.Errorf("%s is %v, but no event was accepted", name, v)
		}
		wall := func(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
		if v < wall(a.wallFrom)-1e-3 || v > wall(a.wallTo)+1e-3 {
			return fmt.Errorf("%s is %v, not the time of the last accepted event (%v to %v)", name, v, wall(a.wallFrom), wall(a.wallTo))
		}
		fake := wall(a.at)
		g.Value = &fake
	}
	return nil
}

func (p *process) close() {
	p.hook.Close()
	p.coll.Close()
	if p.client != nil {
		p.client.Close()
	}
}
