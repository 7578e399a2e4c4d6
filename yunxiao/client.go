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
	EndpointGetPipeline          = "GetPipeline"
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
}

// Client calls the Flow API. It is safe for concurrent use; every request,
// whatever its endpoint, shares one concurrency limit and one rate limit.
type Client struct {
	opts    Options
	prefix  string // endpoint + edition path prefix, no trailing slash
	host    string // the only host the token is ever sent to
	http    *http.Client
	sem     *semaphore.Weighted
	limiter *rate.Limiter // nil when unlimited
	metrics *Metrics

	mu        sync.Mutex
	cooldowns map[string]*cooldown // by request path: set by a 429
}

// cooldown holds back requests for one path after the API answered 429.
// It is per path so that a 429 about one pipeline affects only that
// pipeline; when the whole API throttles, every path gets its own 429 and
// backs off on its own.
type cooldown struct {
	until       time.Time
	consecutive int
}

// New returns a Client. metrics may be shared by successive clients (on
// config reload) so that counters carry on.
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
	c := &Client{
		opts:      opts,
		prefix:    prefix,
		host:      base.Host,
		sem:       semaphore.NewWeighted(int64(opts.MaxConcurrency)),
		metrics:   metrics,
		cooldowns: map[string]*cooldown{},
	}
	c.http = &http.Client{Transport: transport, CheckRedirect: c.checkRedirect}
	if opts.RateLimit > 0 {
		burst := max(opts.Burst, 1)
		c.limiter = rate.NewLimiter(rate.Limit(opts.RateLimit), burst)
	}
	return c, nil
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

// GetLatestPipelineRun returns the latest run of a pipeline, or (nil, nil)
// when the API answers that it has none (an empty, null or id-less body).
// A 404 is returned as an *Error with ReasonNotFound: the API does not say
// whether the pipeline is missing or has never run.
func (c *Client) GetLatestPipelineRun(ctx context.Context, pipelineID int64) (*PipelineRun, error) {
	path := fmt.Sprintf("/pipelines/%d/runs/latestPipelineRun", pipelineID)
	body, err := c.get(ctx, EndpointGetLatestPipelineRun, path)
	if err != nil {
		return nil, c.redactError(err)
	}
	run, err := DecodeRun(body)
	if err != nil {
		return nil, c.redactError(&Error{Endpoint: EndpointGetLatestPipelineRun, StatusCode: http.StatusOK, Reason: ReasonBadResponse, Err: err})
	}
	return run, nil
}

// GetPipeline returns a pipeline's definition (its name, for labels).
func (c *Client) GetPipeline(ctx context.Context, pipelineID int64) (*Pipeline, error) {
	body, err := c.get(ctx, EndpointGetPipeline, fmt.Sprintf("/pipelines/%d", pipelineID))
	if err != nil {
		return nil, c.redactError(err)
	}
	p, err := DecodePipeline(body)
	if err != nil {
		return nil, c.redactError(&Error{Endpoint: EndpointGetPipeline, StatusCode: http.StatusOK, Reason: ReasonBadResponse, Err: err})
	}
	return p, nil
}

// get performs a GET with retries of transient failures, never waiting
// past ctx's deadline: when the next try cannot start in time, the last
// error is returned at once.
func (c *Client) get(ctx context.Context, endpoint, path string) ([]byte, error) {
	return c.getWithHeader(ctx, endpoint, path, nil)
}

// getWithHeader is get that also hands back the answer's headers (paging).
func (c *Client) getWithHeader(ctx context.Context, endpoint, path string, header *http.Header) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		body, err := c.attempt(ctx, endpoint, path, header)
		if err == nil {
			return body, nil
		}
		wait, retryable := c.retryDelay(path, err, attempt)
		if !retryable || attempt >= c.opts.MaxRetries || !sleepWithin(ctx, wait) {
			return nil, err
		}
	}
}

// retryDelay says whether err is worth another try and after how long.
func (c *Client) retryDelay(path string, err error, attempt int) (time.Duration, bool) {
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		return 0, false
	}
	backoff := c.opts.RetryBackoff << attempt
	switch apiErr.Reason {
	case ReasonRateLimited:
		wait := c.cooldownLeft(path)
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

// attempt performs one request under the shared limits.
func (c *Client) attempt(ctx context.Context, endpoint, path string, header *http.Header) ([]byte, error) {
	if err := c.waitCooldown(ctx, endpoint, path); err != nil {
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
			return nil, &Error{Endpoint: endpoint, Reason: ReasonTimeout, Message: "the configured rate_limit allows no request before the deadline"}
		}
	}

	reqCtx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, c.prefix+path, nil)
	if err != nil {
		return nil, &Error{Endpoint: endpoint, Reason: ReasonClientError, Err: err}
	}
	req.Header.Set(TokenHeader, c.opts.Token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "yunxiao_exporter/"+version.Version)

	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.metrics.observe(endpoint, "error", time.Since(start))
		apiErr := c.transportError(endpoint, ctx, reqCtx, err)
		if apiErr.Reason == ReasonNetwork || apiErr.Reason == ReasonTimeout && ctx.Err() == nil {
			c.metrics.setUp(false)
		}
		return nil, apiErr
	}
	defer resp.Body.Close()
	body, readErr := readCapped(resp.Body, c.opts.MaxBodyBytes)
	c.metrics.observe(endpoint, strconv.Itoa(resp.StatusCode), time.Since(start))
	// Redact before anything cuts the text short: a token cut in half by a
	// length limit no longer matches, and its first half would get out.
	body = c.redactBody(body)
	requestID := clean(c.redact(resp.Header.Get("x-request-id")), 80)

	if resp.StatusCode == http.StatusTooManyRequests {
		d := c.noteRateLimited(path, resp.Header.Get("Retry-After"))
		c.metrics.setUp(true)
		e := c.statusError(endpoint, resp, body, requestID)
		e.Message = strings.TrimPrefix(e.Message+fmt.Sprintf("; retry after %s", d.Round(time.Millisecond)), "; ")
		return nil, e
	}
	c.mu.Lock()
	delete(c.cooldowns, path)
	c.mu.Unlock()

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
		c.metrics.setUp(reason != ReasonNetwork && reason != ReasonTimeout)
		return nil, &Error{Endpoint: endpoint, StatusCode: resp.StatusCode, Reason: reason, RequestID: requestID, Err: readErr}
	}

	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		c.metrics.setUp(true)
		if header != nil {
			*header = resp.Header
		}
		return body, nil
	case resp.StatusCode >= 500:
		c.metrics.setUp(false)
	default:
		e := &Error{StatusCode: resp.StatusCode}
		if resp.StatusCode == http.StatusForbidden {
			e.Code, _, _ = DecodeErrorBody(resp.Header.Get("Content-Type"), body)
		}
		c.metrics.setUp(!IsTokenRefused(e))
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
		// failure: not retried, and yunxiao_up is left alone.
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

// noteRateLimited records a 429 for path and returns how long to hold off.
func (c *Client) noteRateLimited(path, retryAfter string) time.Duration {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	cd := c.cooldowns[path]
	if cd == nil {
		cd = &cooldown{}
		c.cooldowns[path] = cd
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

func (c *Client) cooldownLeft(path string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cd := c.cooldowns[path]; cd != nil {
		return max(time.Until(cd.until), 0)
	}
	return 0
}

// waitCooldown holds a request back while the API has asked us to slow
// down on this path, or fails at once when that would outlast ctx's deadline.
func (c *Client) waitCooldown(ctx context.Context, endpoint, path string) error {
	wait := c.cooldownLeft(path)
	if wait <= 0 {
		return nil
	}
	if wait > maxInlineRateLimitWait || !sleepWithin(ctx, wait) {
		if ctx.Err() != nil {
			return contextError(endpoint, ctx.Err(), "while the API asked us to slow down")
		}
		return &Error{Endpoint: endpoint, StatusCode: http.StatusTooManyRequests, Reason: ReasonRateLimited,
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
