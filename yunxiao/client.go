package yunxiao

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/version"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"
)

// Edition selects the shape of API paths.
type Edition string

// The two editions of the Flow OpenAPI.
const (
	// EditionCentral is the shared service: paths carry the organization id.
	EditionCentral Edition = "central"
	// EditionRegion is a dedicated instance: paths carry no organization.
	EditionRegion Edition = "region"
)

// Endpoint names, used as the `endpoint` label of the request metrics.
const (
	EndpointGetLatestPipelineRun = "GetLatestPipelineRun"
	EndpointGetPipelineRun       = "GetPipelineRun"
	EndpointGetPipeline          = "GetPipeline"
	// EndpointCheckAPI is CheckAPI's ListPipelines request, labelled apart
	// so that the probe's cost and answers show on their own.
	EndpointCheckAPI = "CheckAPI"
)

// TokenHeader carries the personal access token.
const TokenHeader = "x-yunxiao-token"

// Defaults for the Options the config does not set.
const (
	DefaultMaxBodyBytes = 4 << 20
	DefaultMaxRetries   = 2
	DefaultRetryBackoff = 500 * time.Millisecond
	// Alibaba's own client waits 60 s after a 429 without Retry-After; we
	// start lower and double up to that, so a single 429 costs little.
	max429Backoff = 60 * time.Second
	// A call waits out a 429's pause itself only when it is this short (and
	// fits the caller's deadline); a longer one fails the call as
	// rate_limited at once, and the next call tries again.
	maxInlineRateLimitWait = time.Second
	// A subject's run of 429s is remembered this long after its pause has
	// passed, so that the backoff keeps doubling across fetches (cache_ttl
	// apart) while the API keeps refusing; then the entry is pruned.
	pauseMemory = 10 * time.Minute
)

// Options configure a Client.
type Options struct {
	Endpoint       string // base URL, e.g. https://openapi-rdc.aliyuncs.com
	Edition        Edition
	OrganizationID string // required for EditionCentral
	Token          string
	Timeout        time.Duration // one request, including reading its body
	MaxConcurrency int           // requests in flight, all endpoints together
	RateLimit      float64       // requests per second; 0 is unlimited
	Burst          int
	TLSConfig      *tls.Config // nil: system roots, verified
	ProxyURL       *url.URL    // nil: HTTPS_PROXY / NO_PROXY from the environment
	MaxBodyBytes   int64       // answers larger than this are errors
	MaxRetries     int         // retries of transient failures, within the caller's deadline
	RetryBackoff   time.Duration
	// Transport replaces the HTTP transport (TLSConfig and ProxyURL are then
	// ignored); tests use it.
	Transport http.RoundTripper
	// Previous is the client this one replaces on a config reload, or nil.
	// The API's 429 pauses carry over when the endpoint host is the same,
	// so a reload does not hammer a pipeline the API asked us to leave
	// alone; the rate limiter and the concurrency limit carry over when
	// RateLimit, Burst and MaxConcurrency are unchanged, so a reload does
	// not refill the burst, and the requests both clients have in flight
	// share one limit. New neither closes nor keeps Previous: Close it.
	Previous *Client
}

// Client calls the Flow API. It is safe for concurrent use; every request,
// whatever its endpoint, shares one concurrency limit and one rate limit.
type Client struct {
	opts    Options // Previous cleared: a client must not keep its predecessors alive
	prefix  string  // endpoint + edition path prefix, no trailing slash
	host    string  // the only host the token is ever sent to
	http    *http.Client
	sem     *semaphore.Weighted // may be shared with the client this one replaced
	limiter *rate.Limiter       // nil when unlimited; may be shared likewise
	metrics *Metrics
	pauses  *pauses // may be shared likewise

	mu     sync.Mutex
	closed bool // Close was called: connections are closed as requests finish
}

// pauses holds back requests about one subject after the API answered 429
// about it. A subject is an endpoint and the pipeline it is about
// ("ListPipelineRuns/123"), not a URL: a pause holds back the next page or
// time range of a listing as well as the same request, and a 429 about one
// pipeline affects only that pipeline. When the whole API throttles, every
// subject gets its own 429 and backs off on its own.
type pauses struct {
	now func() time.Time // time.Now; tests move it

	mu sync.Mutex
	m  map[string]*cooldown // by subject; pruned as entries are added
}

type cooldown struct {
	until       time.Time
	consecutive int
}

// subject names what a request is about, for its 429 pause.
func subject(endpoint string, pipelineID int64) string {
	return endpoint + "/" + strconv.FormatInt(pipelineID, 10)
}

// New returns a Client. metrics may be shared by successive clients (on
// config reload) so that counters carry on; see Options.Previous for what
// else carries on.
func New(opts Options, metrics *Metrics) (*Client, error) {
	base, err := url.Parse(strings.TrimRight(opts.Endpoint, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("endpoint %q is not an absolute http(s) URL", opts.Endpoint)
	}
	if base.RawQuery != "" || base.ForceQuery || base.Fragment != "" {
		// API paths are appended to the endpoint: a query or fragment
		// would swallow them.
		return nil, fmt.Errorf("endpoint %q must not have a query or fragment", opts.Endpoint)
	}
	prefix := base.String() + "/oapi/v1/flow"
	switch opts.Edition {
	case EditionCentral:
		if opts.OrganizationID == "" {
			return nil, errors.New("the central edition needs an organization id")
		}
		prefix += "/organizations/" + url.PathEscape(opts.OrganizationID)
	case EditionRegion:
	default:
		return nil, fmt.Errorf("unknown edition %q", opts.Edition)
	}
	if opts.Timeout <= 0 {
		return nil, errors.New("timeout must be positive")
	}
	if opts.MaxConcurrency <= 0 {
		return nil, errors.New("max concurrency must be positive")
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = DefaultRetryBackoff
	}
	if opts.MaxRetries < 0 {
		opts.MaxRetries = 0
	}
	if metrics == nil {
		metrics = NewMetrics()
	}
	transport := opts.Transport
	if transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = opts.TLSConfig
		if opts.ProxyURL != nil {
			t.Proxy = http.ProxyURL(opts.ProxyURL)
		}
		t.MaxIdleConnsPerHost = opts.MaxConcurrency
		transport = t
	}
	prev := opts.Previous
	opts.Previous = nil
	c := &Client{
		opts:    opts,
		prefix:  prefix,
		host:    base.Host,
		sem:     semaphore.NewWeighted(int64(opts.MaxConcurrency)),
		metrics: metrics,
		pauses:  &pauses{now: time.Now, m: map[string]*cooldown{}},
	}
	c.http = &http.Client{Transport: transport, CheckRedirect: c.checkRedirect}
	if opts.RateLimit > 0 {
		burst := max(opts.Burst, 1)
		c.limiter = rate.NewLimiter(rate.Limit(opts.RateLimit), burst)
	}
	if prev != nil {
		// Shared, not copied: requests the old client still has in flight
		// count against the same limits, and a 429 one of them meets
		// pauses the new client too.
		if prev.host == c.host {
			c.pauses = prev.pauses
		}
		if prev.opts.MaxConcurrency == opts.MaxConcurrency {
			c.sem = prev.sem
		}
		if prev.opts.RateLimit == opts.RateLimit && prev.opts.Burst == opts.Burst {
			c.limiter = prev.limiter
		}
	}
	return c, nil
}

// Close releases the client's connections: the idle ones at once, and each
// one still serving a request as soon as that request finishes. Without it
// every config reload would leave the old client's keep-alive connections
// (and their two goroutines each) open until the server drops them. The
// client stays usable, for calls that were under way when it was replaced;
// their connections are closed as they finish too.
func (c *Client) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.http.CloseIdleConnections()
}

// requestDone runs after a request's answer was read and its body closed,
// which put its connection back among the idle ones: on a closed client,
// close it. (The transport closes connections that fall idle after
// CloseIdleConnections only until the next request asks for one, so a
// call made after Close, or a retry, would otherwise stay in the pool.)
func (c *Client) requestDone() {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		c.http.CloseIdleConnections()
	}
}

var (
	errRedirect         = errors.New("redirect to another host refused: the token is sent only to the configured endpoint")
	errTooManyRedirects = errors.New("stopped after 3 redirects")
)

// checkRedirect follows redirects on the configured host only. Go forwards
// custom headers such as x-yunxiao-token on redirect, so following one to
// another host would hand it the token.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if req.URL.Host != c.host || (via[0].URL.Scheme == "https" && req.URL.Scheme != "https") {
		return errRedirect
	}
	if len(via) >= 3 {
		return errTooManyRedirects
	}
	return nil
}

// CheckAPI asks the API the cheapest question that needs the token
// (ListPipelines, one pipeline of one page; it needs no more scope than the
// exporter's other calls) and sets yunxiao_up from the answer. Nothing
// else sets it: it describes the API and the token as a whole, so one
// pipeline's failure must not decide it, and the last of many concurrent
// fetches to finish must not either.
//
// up is 1 when the API answered and did not refuse the token: any 2xx
// (whatever its body), 404, 429 (or a pause an earlier 429 asked for), and
// any other 4xx. It is 0 when the token is refused (401, or 403 with a
// token or organization code: IsTokenRefused) or the API cannot be reached:
// a network error, a request timeout after the retries, a 5xx, a redirect
// the client refuses. When ctx ends first, or ctx's deadline leaves no
// room to send, the probe says nothing and up keeps its value.
//
// It returns nil when it set up to 1, and otherwise why not.
func (c *Client) CheckAPI(ctx context.Context) error {
	q := url.Values{"page": {"1"}, "perPage": {"1"}}
	_, err := c.get(ctx, call{EndpointCheckAPI, EndpointCheckAPI, "/pipelines?" + q.Encode()})
	up, known := probeVerdict(ctx, err)
	if known {
		c.metrics.setUp(up)
	}
	if up {
		return nil
	}
	return c.redactError(err)
}

// probeVerdict reads CheckAPI's outcome: whether the API is up, and
// whether the outcome says anything about that at all.
func probeVerdict(ctx context.Context, err error) (up, known bool) {
	if err == nil {
		return true, true
	}
	if errors.Is(err, errRateLimitDeadline) {
		return false, false // the caller's deadline left no room: nothing was sent
	}
	if IsTokenRefused(err) {
		return false, true
	}
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		return false, true
	}
	switch apiErr.Reason {
	case ReasonCanceled:
		return false, false
	case ReasonNetwork, ReasonTimeout:
		// Without an answer, the caller's cancel or deadline may be what
		// cut the probe short.
		return false, ctx.Err() == nil
	case ReasonServerError, ReasonRedirect:
		return false, true
	}
	// Other reasons come with an answer; a 5xx too large to read is
	// still a 5xx.
	return apiErr.StatusCode < 500, true
}

// GetLatestPipelineRun returns the latest run of a pipeline, or (nil, nil)
// when the API answers that it has none (an empty or null body, or {}).
// A 404 is returned as an *Error with ReasonNotFound: the API does not say
// whether the pipeline is missing or has never run. A 2xx whose body is an
// error object is ReasonAPIError; any other answer that is not a run
// (no positive pipelineRunId) is ReasonBadResponse.
func (c *Client) GetLatestPipelineRun(ctx context.Context, pipelineID int64) (*PipelineRun, error) {
	var header http.Header
	body, err := c.getWithHeader(ctx, call{EndpointGetLatestPipelineRun, subject(EndpointGetLatestPipelineRun, pipelineID),
		fmt.Sprintf("/pipelines/%d/runs/latestPipelineRun", pipelineID)}, &header)
	if err != nil {
		return nil, c.redactError(err)
	}
	run, err := DecodeRun(body)
	if err != nil {
		return nil, c.decodeError(EndpointGetLatestPipelineRun, header, err)
	}
	return run, nil
}

// GetPipelineRun returns one run of a pipeline, decoded as the latest run
// is. A run that is not there is an error: 404 is ReasonNotFound; an
// answer with no run in it (empty, null, {}), or with another run than
// the one asked for, is ReasonBadResponse.
func (c *Client) GetPipelineRun(ctx context.Context, pipelineID int64, runID ID) (*PipelineRun, error) {
	var header http.Header
	body, err := c.getWithHeader(ctx, call{EndpointGetPipelineRun, subject(EndpointGetPipelineRun, pipelineID),
		fmt.Sprintf("/pipelines/%d/runs/%d", pipelineID, int64(runID))}, &header)
	if err != nil {
		return nil, c.redactError(err)
	}
	run, err := DecodeRun(body)
	switch {
	case err != nil:
	case run == nil:
		err = fmt.Errorf("run: no run in the answer, though run %d was asked for", runID)
	case run.PipelineRunID != runID:
		err = fmt.Errorf("run: the answer is run %d, not run %d", run.PipelineRunID, runID)
	}
	if err != nil {
		return nil, c.decodeError(EndpointGetPipelineRun, header, err)
	}
	return run, nil
}

// GetPipeline returns a pipeline's definition (its name, for labels).
func (c *Client) GetPipeline(ctx context.Context, pipelineID int64) (*Pipeline, error) {
	var header http.Header
	body, err := c.getWithHeader(ctx, call{EndpointGetPipeline, subject(EndpointGetPipeline, pipelineID),
		fmt.Sprintf("/pipelines/%d", pipelineID)}, &header)
	if err != nil {
		return nil, c.redactError(err)
	}
	p, err := DecodePipeline(body)
	if err != nil {
		return nil, c.decodeError(EndpointGetPipeline, header, err)
	}
	return p, nil
}

// decodeError is the error of a 2xx answer a decoder refused: an error
// object (an *Error from errorObject) keeps its reason, code and message;
// anything else is ReasonBadResponse.
func (c *Client) decodeError(endpoint string, header http.Header, err error) error {
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		return c.redactError(&Error{Endpoint: endpoint, StatusCode: http.StatusOK, Reason: ReasonBadResponse, Err: err})
	}
	e := *apiErr
	e.Endpoint, e.StatusCode = endpoint, http.StatusOK
	// As for error statuses, the header's request id wins over the body's.
	if id := clean(c.redact(header.Get("x-request-id")), 80); id != "" {
		e.RequestID = id
	}
	return c.redactError(&e)
}

// call is one API request: its endpoint label, the subject a 429 about it
// pauses, and its path (and query) under the prefix.
type call struct {
	endpoint string
	subject  string
	path     string
}

// get performs a GET with retries of transient failures, never waiting
// past ctx's deadline: when the next try cannot start in time, the last
// error is returned at once.
func (c *Client) get(ctx context.Context, r call) ([]byte, error) {
	return c.getWithHeader(ctx, r, nil)
}

// getWithHeader is get that also hands back the answer's headers (paging,
// request id).
func (c *Client) getWithHeader(ctx context.Context, r call, header *http.Header) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		body, err := c.attempt(ctx, r, header)
		if err == nil {
			return body, nil
		}
		wait, retryable := c.retryDelay(r, err, attempt)
		if !retryable || attempt >= c.opts.MaxRetries || !sleepWithin(ctx, wait) {
			return nil, err
		}
	}
}

// retryDelay says whether err is worth another try and after how long.
func (c *Client) retryDelay(r call, err error, attempt int) (time.Duration, bool) {
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		return 0, false
	}
	backoff := c.opts.RetryBackoff << attempt
	switch apiErr.Reason {
	case ReasonRateLimited:
		wait := c.pauses.left(r.subject)
		return wait, wait <= maxInlineRateLimitWait
	case ReasonServerError:
		switch apiErr.StatusCode {
		case 500, 502, 503, 504:
			return backoff, true
		}
	case ReasonTimeout:
		// A request timeout is worth another try; the caller's deadline is
		// not, and sleepWithin will see that.
		return backoff, true
	case ReasonNetwork:
		var certErr *tls.CertificateVerificationError
		var dnsErr *net.DNSError
		if errors.As(apiErr.Err, &certErr) || (errors.As(apiErr.Err, &dnsErr) && dnsErr.IsNotFound) {
			return 0, false // will not heal within a scrape
		}
		return backoff, true
	}
	return 0, false
}

// sleepWithin waits for d unless ctx ends first or its deadline would pass
// before d does; it reports whether the full wait happened.
func sleepWithin(ctx context.Context, d time.Duration) bool {
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= d {
		return false
	}
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

var errRateLimitDeadline = errors.New("the configured rate_limit allows no request before the deadline")

// attempt performs one request under the shared limits.
func (c *Client) attempt(ctx context.Context, r call, header *http.Header) ([]byte, error) {
	endpoint := r.endpoint
	if err := c.waitCooldown(ctx, r); err != nil {
		return nil, err
	}
	if err := c.sem.Acquire(ctx, 1); err != nil {
		return nil, contextError(endpoint, ctx.Err(), "waiting for a free request slot")
	}
	defer c.sem.Release(1)
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, contextError(endpoint, ctx.Err(), "waiting for the rate limit")
			}
			// The caller's deadline is too close, which says nothing of
			// the API: a sentinel lets CheckAPI tell.
			return nil, &Error{Endpoint: endpoint, Reason: ReasonTimeout, Err: errRateLimitDeadline}
		}
	}

	reqCtx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, c.prefix+r.path, nil)
	if err != nil {
		return nil, &Error{Endpoint: endpoint, Reason: ReasonClientError, Err: err}
	}
	req.Header.Set(TokenHeader, c.opts.Token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "yunxiao_exporter/"+version.Version)

	// Deferred first, so it runs after the body is closed and the
	// connection is back among the idle ones.
	defer c.requestDone()
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.metrics.observe(endpoint, "error", time.Since(start))
		return nil, c.transportError(endpoint, ctx, reqCtx, err)
	}
	defer resp.Body.Close()
	body, readErr := readCapped(resp.Body, c.opts.MaxBodyBytes)
	c.metrics.observe(endpoint, strconv.Itoa(resp.StatusCode), time.Since(start))
	// Redact before anything cuts the text short: a token cut in half by a
	// length limit no longer matches, and its first half would get out.
	body = c.redactBody(body)
	requestID := clean(c.redact(resp.Header.Get("x-request-id")), 80)

	if resp.StatusCode == http.StatusTooManyRequests {
		d := c.pauses.note(r.subject, resp.Header.Get("Retry-After"))
		e := c.statusError(endpoint, resp, body, requestID)
		e.Message = strings.TrimPrefix(e.Message+fmt.Sprintf("; retry after %s", d.Round(time.Millisecond)), "; ")
		return nil, e
	}
	c.pauses.clear(r.subject)

	if readErr != nil {
		reason := ReasonNetwork
		switch {
		case errors.Is(readErr, errTooLarge):
			reason = ReasonTooLarge
		case ctx.Err() != nil:
			return nil, contextError(endpoint, ctx.Err(), "reading the answer")
		case reqCtx.Err() != nil:
			reason = ReasonTimeout
		}
		return nil, &Error{Endpoint: endpoint, StatusCode: resp.StatusCode, Reason: reason, RequestID: requestID, Err: readErr}
	}

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if header != nil {
			*header = resp.Header
		}
		return body, nil
	}
	return nil, c.statusError(endpoint, resp, body, requestID)
}

func (c *Client) statusError(endpoint string, resp *http.Response, body []byte, requestID string) *Error {
	code, msg, bodyRequestID := DecodeErrorBody(resp.Header.Get("Content-Type"), body)
	if requestID == "" {
		requestID = bodyRequestID
	}
	e := &Error{
		Endpoint:   endpoint,
		StatusCode: resp.StatusCode,
		Code:       code, // from a body redactBody already cleaned
		Message:    msg,
		RequestID:  requestID,
	}
	switch s := resp.StatusCode; {
	case s == http.StatusUnauthorized:
		e.Reason = ReasonUnauthorized
	case s == http.StatusForbidden:
		e.Reason = ReasonForbidden
	case s == http.StatusNotFound:
		e.Reason = ReasonNotFound
	case s == http.StatusTooManyRequests:
		e.Reason = ReasonRateLimited
	case s >= 500:
		e.Reason = ReasonServerError
	default:
		e.Reason = ReasonClientError
	}
	return e
}

// redact removes the token from text that came from the server: a gateway
// that echoes request headers must not get it into our logs.
func (c *Client) redact(s string) string {
	if c.opts.Token == "" || !strings.Contains(s, c.opts.Token) {
		return s
	}
	return strings.ReplaceAll(s, c.opts.Token, "<secret>")
}

// redactBody replaces the token in an answer as read, before it is
// decoded, described or cut short, so that neither an error text nor a
// decoded name (a label value) can carry it.
func (c *Client) redactBody(b []byte) []byte {
	if c.opts.Token == "" || !bytes.Contains(b, []byte(c.opts.Token)) {
		return b
	}
	return bytes.ReplaceAll(b, []byte(c.opts.Token), []byte("<secret>"))
}

// redactError is the one gate every error passes on its way out of the
// client: whatever field the server's text reached (message, request id,
// a decoder's quote of a bad value), the token does not get through.
func (c *Client) redactError(err error) error {
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		return redactedError{text: c.redact(err.Error()), cause: err}
	}
	out := *apiErr
	out.Code, out.Message, out.RequestID = c.redact(out.Code), c.redact(out.Message), c.redact(out.RequestID)
	if out.Err != nil && strings.Contains(out.Err.Error(), c.opts.Token) {
		out.Err = redactedError{text: c.redact(out.Err.Error()), cause: out.Err}
	}
	return &out
}

// redactedError shows redacted text but keeps its cause for errors.Is/As.
type redactedError struct {
	text  string
	cause error
}

func (e redactedError) Error() string { return e.text }
func (e redactedError) Unwrap() error { return e.cause }

func (c *Client) transportError(endpoint string, ctx, reqCtx context.Context, err error) *Error {
	switch {
	case errors.Is(err, errRedirect):
		return &Error{Endpoint: endpoint, Reason: ReasonRedirect, Err: errRedirect}
	case errors.Is(err, errTooManyRedirects):
		// A redirect loop is the endpoint's misconfiguration, not a network
		// failure: not retried.
		return &Error{Endpoint: endpoint, Reason: ReasonRedirect, Err: errTooManyRedirects}
	case ctx.Err() != nil:
		return contextError(endpoint, ctx.Err(), "waiting for the answer")
	case reqCtx.Err() != nil:
		return &Error{Endpoint: endpoint, Reason: ReasonTimeout, Message: fmt.Sprintf("no answer within %s", c.opts.Timeout)}
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err // the URL is known from the endpoint; keep the cause
	}
	return &Error{Endpoint: endpoint, Reason: ReasonNetwork, Err: err}
}

func contextError(endpoint string, err error, doing string) *Error {
	reason := ReasonCanceled
	if errors.Is(err, context.DeadlineExceeded) {
		reason = ReasonTimeout
	}
	what := "canceled "
	if reason == ReasonTimeout {
		what = "deadline reached "
	}
	return &Error{Endpoint: endpoint, Reason: reason, Message: what + doing}
}

// note records a 429 about subject and returns how long to hold off. It
// prunes the entries whose pause has long passed, so the map holds only
// the subjects paused now or lately, however many come and go.
func (p *pauses) note(subject, retryAfter string) time.Duration {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for s, cd := range p.m {
		if s != subject && now.Sub(cd.until) > pauseMemory {
			delete(p.m, s)
		}
	}
	cd := p.m[subject]
	if cd == nil || now.Sub(cd.until) > pauseMemory {
		cd = &cooldown{}
		p.m[subject] = cd
	}
	cd.consecutive++
	d, ok := ParseRetryAfter(retryAfter, now)
	if !ok {
		d = min(time.Second<<min(cd.consecutive-1, 6), max429Backoff)
	}
	if until := now.Add(d); until.After(cd.until) {
		cd.until = until
	}
	return d
}

// clear forgets subject's 429s: the API answered something else about it.
func (p *pauses) clear(subject string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, subject)
}

// left is how much longer subject is paused.
func (p *pauses) left(subject string) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cd := p.m[subject]; cd != nil {
		return max(cd.until.Sub(p.now()), 0)
	}
	return 0
}

// size is the number of subjects remembered.
func (p *pauses) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}

// waitCooldown holds a request back while the API has asked us to slow
// down on its subject, or fails at once when that would outlast ctx's
// deadline.
func (c *Client) waitCooldown(ctx context.Context, r call) error {
	wait := c.pauses.left(r.subject)
	if wait <= 0 {
		return nil
	}
	if wait > maxInlineRateLimitWait || !sleepWithin(ctx, wait) {
		if ctx.Err() != nil {
			return contextError(r.endpoint, ctx.Err(), "while the API asked us to slow down")
		}
		return &Error{Endpoint: r.endpoint, StatusCode: http.StatusTooManyRequests, Reason: ReasonRateLimited,
			Message: fmt.Sprintf("not sent: the API asked for no requests for another %s", wait.Round(time.Second))}
	}
	return nil
}

var errTooLarge = errors.New("answer larger than the size limit")

// readCapped reads at most limit bytes, and fails rather than truncating.
func readCapped(r io.Reader, limit int64) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%w (%d bytes)", errTooLarge, limit)
	}
	return body, nil
}
