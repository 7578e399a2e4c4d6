package webhook

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// MaxBodyBytes is the largest body the receiver reads; a larger one is
// answered 413.
const MaxBodyBytes = 1 << 20

// Defaults for the zero values of Options.
const (
	DefaultRateLimit   rate.Limit = 50 // requests per second, after the token check
	DefaultRateBurst              = 200
	DefaultWindow                 = 2 * time.Second
	DefaultMinInterval            = time.Second
)

// Options configure a Receiver. Refresher is required; the zero value of
// every other field means its default.
type Options struct {
	// Token returns the current webhook token, already trimmed. It is
	// called on every request; "" (or a nil Token) disables the endpoint,
	// which then answers 404.
	Token func() string

	// Refresher re-reads the pipeline an accepted event names.
	Refresher Refresher

	// OnUnwatched, if set, is called when a refresh finds that the
	// event's pipeline is not watched (once per refresh, so at most once
	// per window per pipeline), from the refresh's goroutine, and not
	// after Close; it must not block for long.
	// The exporter can start a (rate-limited) discovery from it.
	OnUnwatched func(pipelineID int64)

	// Logger receives the receiver's logs; nil discards them. Each cause of
	// a refused request is logged at warn the first time, then at debug.
	Logger log.Logger

	// RateLimit and RateBurst limit the authenticated requests the
	// receiver processes; beyond them it answers 429 without reading the
	// body. rate.Inf disables the limit. Defaults: 50/s, burst 200 (a big
	// pipeline emits an event per job status change).
	RateLimit rate.Limit
	RateBurst int

	// Window is how long after a refresh starts further events for the same
	// pipeline are collected into one trailing refresh. Default 2s.
	Window time.Duration

	// MinInterval is the least time between the starts of two refreshes of
	// one pipeline; the window is never shorter. Default 1s.
	MinInterval time.Duration
}

// Receiver is the webhook endpoint: an http.Handler for Flow's POSTs, a
// prometheus.Collector for its metrics, and the owner of the refreshes
// the events schedule. It serves whatever path it is mounted on.
type Receiver struct {
	token   func() string
	limiter *rate.Limiter
	clk     clock
	metrics *metrics
	log     *causeLog
	co      *coalescer
}

// New returns a Receiver whose refreshes run with a context derived from
// parent. Close it to stop them. It panics if opts.Refresher is nil.
func New(parent context.Context, opts Options) *Receiver {
	return newReceiver(parent, opts, realClock{})
}

func newReceiver(parent context.Context, o Options, clk clock) *Receiver {
	if o.Refresher == nil {
		panic("webhook: Options.Refresher is nil")
	}
	if o.Token == nil {
		o.Token = func() string { return "" }
	}
	if o.RateLimit <= 0 {
		o.RateLimit = DefaultRateLimit
	}
	if o.RateBurst <= 0 {
		o.RateBurst = DefaultRateBurst
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.MinInterval <= 0 {
		o.MinInterval = DefaultMinInterval
	}
	m := newMetrics()
	l := newCauseLog(o.Logger)
	return &Receiver{
		token:   o.Token,
		limiter: rate.NewLimiter(o.RateLimit, o.RateBurst),
		clk:     clk,
		metrics: m,
		log:     l,
		co:      newCoalescer(parent, o, clk, m, l),
	}
}

// ServeHTTP answers one webhook request; see the package comment. The
// answer never says more than a short fixed reason.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	want := rc.token()
	if want == "" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		rc.refuse(w, r, http.StatusMethodNotAllowed, resultBadRequest, "method not allowed")
		return
	}
	switch got := r.URL.Query().Get("token"); {
	case got == "":
		rc.refuse(w, r, http.StatusUnauthorized, resultUnauthorized, "missing token")
		return
	case !tokenMatches(got, want):
		rc.refuse(w, r, http.StatusUnauthorized, resultUnauthorized, "wrong token")
		return
	}
	if !rc.limiter.AllowN(rc.clk.Now(), 1) {
		w.Header().Set("Retry-After", "1")
		rc.refuse(w, r, http.StatusTooManyRequests, resultRateLimited, "rate limit exceeded")
		return
	}
	if r.ContentLength > MaxBodyBytes {
		rc.refuse(w, r, http.StatusRequestEntityTooLarge, resultTooLarge, "body above 1 MiB")
		return
	}
	ev, err := Decode(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		var bad *DecodeError
		switch {
		case errors.As(err, &tooLarge):
			rc.refuse(w, r, http.StatusRequestEntityTooLarge, resultTooLarge, "body above 1 MiB")
		case errors.As(err, &bad):
			rc.refuse(w, r, http.StatusBadRequest, resultBadRequest, bad.Error())
		default:
			rc.refuse(w, r, http.StatusBadRequest, resultBadRequest, "could not read the body")
		}
		return
	}
	switch rc.co.notify(ev.PipelineID) {
	case notifyFull:
		w.Header().Set("Retry-After", "1")
		rc.refuse(w, r, http.StatusTooManyRequests, resultRateLimited, "too many pipelines waiting for a refresh")
		return
	case notifyClosed:
		rc.refuse(w, r, http.StatusServiceUnavailable, "", "shutting down")
		return
	}
	level.Debug(rc.log.logger).Log("msg", "webhook: event accepted", "pipeline_id", ev.PipelineID,
		"event", redact(ev.Event, want), "action", redact(ev.Action, want),
		"status", redact(ev.Status, want), "build_number", ev.BuildNumber)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte("accepted\n"))
}

// refuse answers code with reason, counts the result (unless "") and logs
// the cause. reason is one of a fixed set of texts: never the token, never
// a piece of the body.
func (rc *Receiver) refuse(w http.ResponseWriter, r *http.Request, code int, result, reason string) {
	if result != "" {
		rc.metrics.count(result)
	}
	rc.log.report(reason, "msg", "webhook: request refused", "code", code, "remote", r.RemoteAddr)
	http.Error(w, reason, code)
}

// tokenMatches is the only comparison of the token. It compares SHA-256
// digests of both sides with subtle.ConstantTimeCompare: equal lengths,
// constant time, so neither the token's bytes nor its length leak.
func tokenMatches(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// redact keeps a sender's string out of the log if it holds the token.
func redact(s, token string) string {
	if strings.Contains(s, token) {
		return "(redacted)"
	}
	return s
}

// Describe implements prometheus.Collector.
func (rc *Receiver) Describe(ch chan<- *prometheus.Desc) { rc.metrics.describe(ch) }

// Collect implements prometheus.Collector.
func (rc *Receiver) Collect(ch chan<- prometheus.Metric) {
	rc.metrics.collect(ch, rc.token() != "")
}

// Close stops the timers, drops events waiting for a trailing refresh,
// cancels the running refreshes and waits for them to return. Requests
// after Close are answered 503.
func (rc *Receiver) Close() { rc.co.close() }
