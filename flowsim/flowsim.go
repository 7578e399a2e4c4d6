// Package flowsim simulates the Yunxiao Flow OpenAPI: pipelines whose runs
// start, move through stages and jobs, and end in SUCCESS, FAIL or CANCELED,
// some waiting for approval, one stuck. It backs the exporter's --demo mode
// and is the fake API the tests run against; tests can pin any answer
// (fixtures) or take over a pipeline's requests (faults), and count what
// arrived.
package flowsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Outcome is how a simulated run ends.
type Outcome string

// Outcomes a simulated run can have.
const (
	Success  Outcome = "SUCCESS"
	Fail     Outcome = "FAIL"
	Canceled Outcome = "CANCELED"
	Waiting  Outcome = "WAITING" // stops at its approval job until the next run replaces it
	Stuck    Outcome = "STUCK"   // one job never ends
)

// Job is a simulated job; jobs of a stage run in parallel.
type Job struct {
	Sign     string
	Name     string
	Duration time.Duration
	Approval bool // a manual approval gate: a Waiting run stops here
}

// Stage is a simulated stage; stages run one after another.
type Stage struct {
	Name string
	Jobs []Job
}

// Pipeline is a simulated pipeline. Run k (k = 0, 1, ...) starts k·Period
// after the simulator's start less Phase, has the id FirstRunID + k, and
// ends as Outcomes[k mod len(Outcomes)]. A pipeline with no outcomes has
// never run.
type Pipeline struct {
	ID          int64
	Name        string
	TriggerMode int
	Period      time.Duration
	Phase       time.Duration
	Stages      []Stage
	Outcomes    []Outcome
}

// Options configure a Server.
type Options struct {
	Token          string           // required x-yunxiao-token value
	Edition        string           // "central" (default) or "region"
	OrganizationID string           // for central
	Now            func() time.Time // default time.Now
	Latency        time.Duration    // added to every answer (benchmarks)
}

// Response is a pinned answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Server is the simulated API; it is an http.Handler.
type Server struct {
	opts  Options
	start time.Time
	mux   *http.ServeMux

	mu        sync.Mutex
	pipelines map[int64]*Pipeline
	order     []int64
	pinned    map[string]Response        // key: endpoint/id
	faults    map[int64]http.HandlerFunc // takes over every request about a pipeline
	listFault http.HandlerFunc           // takes over ListPipelines

	requests    sync.Map // endpoint -> *atomic.Int64
	perPipeline sync.Map // id -> *atomic.Int64
	inFlight    atomic.Int64
	maxInFlight atomic.Int64
}

// Endpoint names, as the exporter labels them.
const (
	EndpointLatestRun = "GetLatestPipelineRun"
	EndpointRun       = "GetPipelineRun"
	EndpointPipeline  = "GetPipeline"
	EndpointList      = "ListPipelines"
	EndpointListRuns  = "ListPipelineRuns"
	// EndpointCheck counts, among the ListPipelines requests, those for
	// one item (perPage=1): the exporter's API probe. Listings proper are
	// Requests(EndpointList) - Requests(EndpointCheck).
	EndpointCheck = "CheckAPI"
)

// New returns a Server simulating pipelines.
func New(opts Options, pipelines ...Pipeline) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Edition == "" {
		opts.Edition = "central"
	}
	s := &Server{
		opts:      opts,
		start:     opts.Now(),
		pipelines: map[int64]*Pipeline{},
		pinned:    map[string]Response{},
		faults:    map[int64]http.HandlerFunc{},
	}
	for i := range pipelines {
		s.Add(pipelines[i])
	}
	s.mux = http.NewServeMux()
	for _, prefix := range []string{"/oapi/v1/flow/organizations/{org}", "/oapi/v1/flow"} {
		// The literal latestPipelineRun is more specific than {runId}, so
		// ServeMux routes it apart.
		s.mux.HandleFunc("GET "+prefix+"/pipelines/{id}/runs/latestPipelineRun", s.handleLatestRun)
		s.mux.HandleFunc("GET "+prefix+"/pipelines/{id}/runs/{runId}", s.handleRun)
		s.mux.HandleFunc("GET "+prefix+"/pipelines/{id}/runs", s.handleListRuns)
		s.mux.HandleFunc("GET "+prefix+"/pipelines/{id}", s.handlePipeline)
		s.mux.HandleFunc("GET "+prefix+"/pipelines", s.handleList)
	}
	s.mux.HandleFunc("GET /oapi/v1/platform/user", func(w http.ResponseWriter, r *http.Request) {
		if s.authorized(w, r) {
			writeJSON(w, http.StatusOK, map[string]string{"id": "demo-user", "name": "Demo"})
		}
	})
	return s
}

// Add adds or replaces a simulated pipeline.
func (s *Server) Add(p Pipeline) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pipelines[p.ID]; !ok {
		s.order = append(s.order, p.ID)
	}
	s.pipelines[p.ID] = &p
}

// Pin makes endpoint answer resp for pipeline id until Unpin.
func (s *Server) Pin(endpoint string, id int64, resp Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pinned[pinKey(endpoint, id)] = resp
}

// PinJSON pins a 200 answer with body.
func (s *Server) PinJSON(endpoint string, id int64, body []byte) {
	s.Pin(endpoint, id, Response{Status: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}}, Body: body})
}

// Unpin removes a pinned answer.
func (s *Server) Unpin(endpoint string, id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pinned, pinKey(endpoint, id))
}

// Fault hands every request about pipeline id to h (nil removes it).
func (s *Server) Fault(id int64, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h == nil {
		delete(s.faults, id)
		return
	}
	s.faults[id] = h
}

// FaultList hands ListPipelines requests to h (nil removes it).
func (s *Server) FaultList(h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listFault = h
}

// Requests returns how many requests arrived for endpoint.
func (s *Server) Requests(endpoint string) int64 {
	if v, ok := s.requests.Load(endpoint); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// PipelineRequests returns how many requests arrived about pipeline id.
func (s *Server) PipelineRequests(id int64) int64 {
	if v, ok := s.perPipeline.Load(id); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// MaxInFlight returns the most requests that were ever being served at once.
func (s *Server) MaxInFlight() int64 { return s.maxInFlight.Load() }

func count(m *sync.Map, key any) {
	v, _ := m.LoadOrStore(key, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func pinKey(endpoint string, id int64) string { return endpoint + "/" + strconv.FormatInt(id, 10) }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.maxInFlight.Load()
		if n <= m || s.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	if s.opts.Latency > 0 {
		t := time.NewTimer(s.opts.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if org := r.PathValue("org"); org != "" || s.opts.Edition == "central" {
		if s.opts.Edition != "central" || org != s.opts.OrganizationID {
			writeError(w, http.StatusNotFound, "NotFound", "no such organization path")
			return false
		}
	}
	if r.Header.Get("x-yunxiao-token") != s.opts.Token || s.opts.Token == "" {
		writeError(w, http.StatusUnauthorized, "InvalidTokenError", "the token is invalid")
		return false
	}
	return true
}

// begin does what every per-pipeline handler does first: count, check
// auth, apply faults and pinned answers. It reports whether the caller
// should still answer, and with which pipeline.
func (s *Server) begin(endpoint string, w http.ResponseWriter, r *http.Request) (*Pipeline, int64, bool) {
	count(&s.requests, endpoint)
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "pipelineId must be a number")
		return nil, 0, false
	}
	count(&s.perPipeline, id)
	s.mu.Lock()
	fault := s.faults[id]
	pinned, isPinned := s.pinned[pinKey(endpoint, id)]
	p := s.pipelines[id]
	s.mu.Unlock()
	if fault != nil {
		fault(w, r)
		return nil, id, false
	}
	if !s.authorized(w, r) {
		return nil, id, false
	}
	if isPinned {
		for k, v := range pinned.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(pinned.Status)
		_, _ = w.Write(pinned.Body)
		return nil, id, false
	}
	if p == nil {
		writeError(w, http.StatusNotFound, "NotFound", "pipeline not found")
		return nil, id, false
	}
	return p, id, true
}

func (s *Server) handleLatestRun(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.begin(EndpointLatestRun, w, r)
	if !ok {
		return
	}
	run := p.RunAt(s.start, s.opts.Now())
	if run == nil {
		writeError(w, http.StatusNotFound, "NotFound", "the pipeline has no runs")
		return
	}
	writeJSON(w, http.StatusOK, run)
}

// handleRun serves GetPipelineRun: run runId as of now, as the latest run
// was or is, so a client can follow a run after a newer one has started.
func (s *Server) handleRun(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.begin(EndpointRun, w, r)
	if !ok {
		return
	}
	runID, err := strconv.ParseInt(r.PathValue("runId"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "pipelineRunId must be a number")
		return
	}
	run := p.RunByID(s.start, s.opts.Now(), runID)
	if run == nil {
		writeError(w, http.StatusNotFound, "NotFound", "pipeline run not found")
		return
	}
	writeJSON(w, http.StatusOK, run)
}

func (s *Server) handlePipeline(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.begin(EndpointPipeline, w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"name":       p.Name,
		"createTime": s.start.Add(-30 * 24 * time.Hour).UnixMilli(),
		"groupId":    0,
	})
}

// handleListRuns serves ListPipelineRuns: runs started at or after
// startTime, newest first, paged.
func (s *Server) handleListRuns(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.begin(EndpointListRuns, w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	since, _ := strconv.ParseInt(q.Get("startTime"), 10, 64)
	page, perPage := paging(q.Get("page"), q.Get("perPage"))
	runs := p.RunsSince(s.start, s.opts.Now(), time.UnixMilli(since), 1000)
	from, to := min((page-1)*perPage, len(runs)), min(page*perPage, len(runs))
	setPagingHeaders(w, len(runs), page, perPage)
	writeJSON(w, http.StatusOK, runs[from:to])
}

func paging(pageParam, perPageParam string) (page, perPage int) {
	page, _ = strconv.Atoi(pageParam)
	perPage, _ = strconv.Atoi(perPageParam)
	if perPage <= 0 || perPage > 30 {
		perPage = 30
	}
	return max(page, 1), perPage
}

func setPagingHeaders(w http.ResponseWriter, total, page, perPage int) {
	pages := (total + perPage - 1) / perPage
	h := w.Header()
	h.Set("x-total", strconv.Itoa(total))
	h.Set("x-total-pages", strconv.Itoa(pages))
	h.Set("x-page", strconv.Itoa(page))
	h.Set("x-per-page", strconv.Itoa(perPage))
	if page < pages {
		h.Set("x-next-page", strconv.Itoa(page+1))
	}
}

// handleList serves ListPipelines with the documented paging headers.
// The exporter's API probe (CheckAPI: perPage=1) is a ListPipelines
// request like any other, counted and faulted as one; it is also counted
// as EndpointCheck, so that tests can tell probes from listings.
func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	count(&s.requests, EndpointList)
	if r.URL.Query().Get("perPage") == "1" {
		count(&s.requests, EndpointCheck)
	}
	s.mu.Lock()
	fault := s.listFault
	s.mu.Unlock()
	if fault != nil {
		fault(w, r)
		return
	}
	if !s.authorized(w, r) {
		return
	}
	page, perPage := paging(r.URL.Query().Get("page"), r.URL.Query().Get("perPage"))
	s.mu.Lock()
	ids := append([]int64(nil), s.order...)
	items := make([]map[string]any, 0, perPage)
	for i := (page - 1) * perPage; i < len(ids) && i < page*perPage; i++ {
		p := s.pipelines[ids[i]]
		items = append(items, map[string]any{"pipelineId": p.ID, "pipelineName": p.Name, "createTime": s.start.UnixMilli(), "createAccountId": "1"})
	}
	s.mu.Unlock()
	setPagingHeaders(w, len(ids), page, perPage)
	writeJSON(w, http.StatusOK, items)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-request-id", fmt.Sprintf("sim-%d", time.Now().UnixNano()))
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"errorCode": code, "errorMessage": msg, "requestId": "sim"})
}
