package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/yunxiao-exporter/yunxiao_exporter/flowsim"
)

// The Flow API a scenario's exporters talk to: flowsim (routing, the
// organization path, ListPipelines with its paging, the probe) behind a
// gate that applies the scenario's faults, with each scripted pipeline's
// requests taken over (flowsim's Fault) and answered from its run timeline
// on the scenario's fake clock. Every exporter reaches it through the real
// yunxiao client over HTTP on 127.0.0.1, so request counters, error
// reasons and yunxiao_up are the client's own.

// Never is the End of a job, or the At of nothing, that does not happen
// within the story.
const Never = time.Duration(math.MaxInt64)

// Trigger modes as the API codes them.
const (
	Manual    = 1
	Scheduled = 2
	Push      = 3
	Webhook   = 6
)

// Run is one scripted run. Times are story times: minute 0 is the
// scenario's origin, earlier runs have negative times.
type Run struct {
	ID      int64
	Trigger int
	Created time.Duration
	// Status is the run's status over time; the first change is at Created.
	// A final status (SUCCESS, FAIL, CANCELED) ends the run: updateTime is
	// its At.
	Status []Change
	Jobs   []Job
}

// Change is a status from At on.
type Change struct {
	At     time.Duration
	Status string
}

// Job is one job of a run; jobs of the same Stage are one stage, stages in
// the order they first appear.
type Job struct {
	Stage, Sign, Name string
	Start, End        time.Duration // End is Never while it does not end
	Status            string        // final status, from End on
	// Waiting jobs are WAITING rather than RUNNING until End: a manual
	// approval gate.
	Waiting bool
}

// ran is a run of one job that starts when the run is created and ends
// with the run, with its final status.
func ran(id int64, trigger int, created, end time.Duration, status string) *Run {
	return &Run{ID: id, Trigger: trigger, Created: created,
		Status: []Change{{created, "RUNNING"}, {end, status}},
		Jobs:   []Job{{Stage: "Build", Sign: "build", Name: "Build", Start: created, End: end, Status: status}}}
}

// running is a run of one job, started at created, that does not end
// within the story.
func running(id int64, trigger int, created time.Duration) *Run {
	return &Run{ID: id, Trigger: trigger, Created: created, Status: []Change{{created, "RUNNING"}},
		Jobs: []Job{{Stage: "Build", Sign: "build", Name: "Build", Start: created, End: Never}}}
}

func isFinal(status string) bool {
	return status == "SUCCESS" || status == "FAIL" || status == "CANCELED"
}

// status is the run's status at t and when it took it.
func (r *Run) status(t time.Duration) (string, time.Duration) {
	s, at := "", r.Created
	for _, c := range r.Status {
		if c.At <= t {
			s, at = c.Status, c.At
		}
	}
	return s, at
}

func ms(origin time.Time, d time.Duration) int64 { return origin.Add(d).UnixMilli() }

// json is the run as GetLatestPipelineRun and GetPipelineRun answer it at t.
func (r *Run) json(pipelineID int64, origin time.Time, t time.Duration) map[string]any {
	status, at := r.status(t)
	update := r.Created
	type stage struct {
		name       string
		jobs       []map[string]any
		start, end time.Duration
		running    bool
		waiting    bool
		failed     bool
		canceled   bool
		open       bool // a job has not ended
	}
	var stages []*stage
	byName := map[string]*stage{}
	for i, j := range r.Jobs {
		st := byName[j.Stage]
		if st == nil {
			st = &stage{name: j.Stage, start: Never, end: -Never}
			byName[j.Stage] = st
			stages = append(stages, st)
		}
		if j.Start > t {
			st.open = true
			continue
		}
		job := map[string]any{"id": r.ID*100 + int64(i), "jobSign": j.Sign, "name": j.Name,
			"startTime": ms(origin, j.Start), "endTime": 0, "params": "{}", "result": "", "actions": []any{}}
		st.start = min(st.start, j.Start)
		update = max(update, j.Start)
		switch {
		case j.End <= t:
			job["status"], job["endTime"] = j.Status, ms(origin, j.End)
			st.end = max(st.end, j.End)
			update = max(update, j.End)
			st.failed = st.failed || j.Status == "FAIL"
			st.canceled = st.canceled || j.Status == "CANCELED"
		case j.Waiting:
			job["status"], st.waiting, st.open = "WAITING", true, true
		default:
			job["status"], st.running, st.open = "RUNNING", true, true
		}
		st.jobs = append(st.jobs, job)
	}
	var out []map[string]any
	for i, st := range stages {
		s := map[string]any{"index": "Group0-Stage" + strconv.Itoa(i), "name": st.name}
		if len(st.jobs) > 0 {
			info := map[string]any{"name": st.name, "startTime": ms(origin, st.start), "endTime": 0, "jobs": st.jobs}
			switch {
			case st.running:
				info["status"] = "RUNNING"
			case st.waiting:
				info["status"] = "WAITING"
			case st.failed:
				info["status"] = "FAIL"
			case st.canceled:
				info["status"] = "CANCELED"
			case st.open:
				info["status"] = "RUNNING"
			default:
				info["status"] = "SUCCESS"
			}
			if !st.open {
				info["endTime"] = ms(origin, st.end)
			}
			s["stageInfo"] = info
		}
		out = append(out, s)
	}
	if isFinal(status) {
		update = at
	} else {
		update = max(update, at)
	}
	return map[string]any{
		"pipelineId": pipelineID, "pipelineRunId": r.ID, "status": status, "triggerMode": r.Trigger,
		"createTime": ms(origin, r.Created), "updateTime": ms(origin, update),
		"creatorAccountId": "1222222222", "pipelineType": "default", "stages": out,
		// Run parameters the exporter must never read.
		"globalParams": []map[string]any{{"key": "REGISTRY_PASSWORD", "value": "recorder-secret", "encrypted": true}},
	}
}

// summary is the run as ListPipelineRuns lists it at t.
func (r *Run) summary(origin time.Time, t time.Duration) map[string]any {
	status, at := r.status(t)
	end := int64(0)
	if isFinal(status) {
		end = ms(origin, at)
	}
	return map[string]any{"pipelineRunId": r.ID, "status": status, "triggerMode": r.Trigger,
		"startTime": ms(origin, r.Created), "endTime": end, "creatorAccountId": "1222222222"}
}

// Fault makes the API answer otherwise for a while. The first fault that
// matches a request answers it.
type Fault struct {
	From, To time.Duration // story times, [From, To); To 0 is for ever
	// Scope: requests about Pipeline; else, with List, ListPipelines
	// requests (discovery and the API probe); else every request.
	Pipeline int64
	List     bool
	Token    string // only requests carrying this token; "" any
	// The answer: Status with an error body (Code, Message) and, for 429,
	// Retry-After; or, with Unreachable, the connection closed unanswered.
	Status      int
	Code        string
	Message     string
	RetryAfter  string
	Unreachable bool
}

// FlowAPI is one scenario's Flow API.
type FlowAPI struct {
	clock  *Clock
	origin time.Time
	sim    *flowsim.Server
	srv    *httptest.Server

	mu        sync.Mutex
	tokens    map[string]bool
	pipelines map[int64][]*Run
	faults    []Fault
}

const (
	simToken = "pt-recorder-flowsim"
	orgID    = "recorder-org"
)

func newFlowAPI(clock *Clock, origin time.Time) *FlowAPI {
	a := &FlowAPI{clock: clock, origin: origin, tokens: map[string]bool{}, pipelines: map[int64][]*Run{}}
	a.sim = flowsim.New(flowsim.Options{Token: simToken, OrganizationID: orgID, Now: clock.Now})
	a.srv = httptest.NewServer(http.HandlerFunc(a.gate))
	return a
}

// Close stops the server.
func (a *FlowAPI) Close() {
	a.srv.CloseClientConnections()
	a.srv.Close()
}

// Token makes a token valid and returns it.
func (a *FlowAPI) Token(tok string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tokens[tok] = true
	return tok
}

// Pipeline adds a pipeline with its runs (none: it has never run).
func (a *FlowAPI) Pipeline(id int64, name string, runs ...*Run) {
	a.mu.Lock()
	a.pipelines[id] = append([]*Run(nil), runs...)
	a.mu.Unlock()
	a.sim.Add(flowsim.Pipeline{ID: id, Name: name})
	a.sim.Fault(id, a.servePipeline(id, name))
}

// Fault adds a fault.
func (a *FlowAPI) Fault(f Fault) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.faults = append(a.faults, f)
}

func (a *FlowAPI) story() time.Duration { return a.clock.Now().Sub(a.origin) }

// route splits a request path into what it is about: the pipeline id (0
// for ListPipelines) and the rest after /pipelines/{id}.
func route(path string) (id int64, rest string, ok bool) {
	i := strings.Index(path, "/pipelines")
	if i < 0 {
		return 0, "", false
	}
	tail := strings.TrimPrefix(path[i+len("/pipelines"):], "/")
	if tail == "" {
		return 0, "", true
	}
	idStr, rest, _ := strings.Cut(tail, "/")
	id, err := strconv.ParseInt(idStr, 10, 64)
	return id, rest, err == nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"errorCode": code, "errorMessage": msg, "requestId": "recorder"})
}

// gate applies faults, checks the token, and hands the request to flowsim
// with the simulator's own token.
func (a *FlowAPI) gate(w http.ResponseWriter, r *http.Request) {
	now := a.story()
	id, _, routed := route(r.URL.Path)
	tok := r.Header.Get("x-yunxiao-token")
	a.mu.Lock()
	var fault *Fault
	for i := range a.faults {
		f := &a.faults[i]
		if now < f.From || (f.To != 0 && now >= f.To) || (f.Token != "" && f.Token != tok) {
			continue
		}
		switch {
		case f.Pipeline != 0 && (!routed || id != f.Pipeline):
			continue
		case f.Pipeline == 0 && f.List && (!routed || id != 0):
			continue
		}
		fault = f
		break
	}
	valid := a.tokens[tok]
	a.mu.Unlock()
	switch {
	case fault != nil && fault.Unreachable:
		// The connection is closed without an answer: to the client, the
		// API cannot be reached.
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return
	case fault != nil:
		if fault.RetryAfter != "" {
			w.Header().Set("Retry-After", fault.RetryAfter)
		}
		writeError(w, fault.Status, fault.Code, fault.Message)
		return
	case !valid:
		writeError(w, http.StatusUnauthorized, "InvalidTokenError", "the token is invalid")
		return
	}
	r.Header.Set("x-yunxiao-token", simToken)
	a.sim.ServeHTTP(w, r)
}

// servePipeline answers every request about one scripted pipeline from its
// run timeline (flowsim hands them over through its Fault hook).
func (a *FlowAPI) servePipeline(id int64, name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		now := a.story()
		a.mu.Lock()
		var runs []*Run
		for _, run := range a.pipelines[id] {
			if run.Created <= now {
				runs = append(runs, run)
			}
		}
		a.mu.Unlock()
		// Newest first.
		sort.Slice(runs, func(i, j int) bool {
			if runs[i].Created != runs[j].Created {
				return runs[i].Created > runs[j].Created
			}
			return runs[i].ID > runs[j].ID
		})
		_, rest, _ := route(r.URL.Path)
		switch {
		case rest == "":
			writeJSON(w, http.StatusOK, map[string]any{"name": name, "createTime": ms(a.origin, -30*24*time.Hour), "groupId": 0})
		case rest == "runs/latestPipelineRun":
			if len(runs) == 0 {
				writeError(w, http.StatusNotFound, "NotFound", "the pipeline has no runs")
				return
			}
			writeJSON(w, http.StatusOK, runs[0].json(id, a.origin, now))
		case strings.HasPrefix(rest, "runs/"):
			runID, _ := strconv.ParseInt(strings.TrimPrefix(rest, "runs/"), 10, 64)
			for _, run := range runs {
				if run.ID == runID {
					writeJSON(w, http.StatusOK, run.json(id, a.origin, now))
					return
				}
			}
			writeError(w, http.StatusNotFound, "NotFound", "pipeline run not found")
		case rest == "runs":
			q := r.URL.Query()
			since, _ := strconv.ParseInt(q.Get("startTime"), 10, 64)
			var items []map[string]any
			for _, run := range runs {
				if ms(a.origin, run.Created) >= since {
					items = append(items, run.summary(a.origin, now))
				}
			}
			page, _ := strconv.Atoi(q.Get("page"))
			perPage, _ := strconv.Atoi(q.Get("perPage"))
			page, perPage = max(page, 1), min(max(perPage, 1), 30)
			pages := (len(items) + perPage - 1) / perPage
			h := w.Header()
			h.Set("x-total", strconv.Itoa(len(items)))
			h.Set("x-total-pages", strconv.Itoa(pages))
			h.Set("x-page", strconv.Itoa(page))
			h.Set("x-per-page", strconv.Itoa(perPage))
			if page < pages {
				h.Set("x-next-page", strconv.Itoa(page+1))
			}
			from, to := min((page-1)*perPage, len(items)), min(page*perPage, len(items))
			writeJSON(w, http.StatusOK, append([]map[string]any{}, items[from:to]...))
		default:
			writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("no such resource %q", rest))
		}
	}
}
