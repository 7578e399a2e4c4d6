package flowsim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"
)

// TestGetPipelineRun: run k of a pipeline is served at its id, the same as
// the latest run while it is the latest; other ids are 404, a bad one 400;
// requests are counted per endpoint and per pipeline.
func TestGetPipelineRun(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p := Pipeline{ID: 7, Name: "p", TriggerMode: 1, Period: time.Minute, Phase: 5*time.Minute + 30*time.Second,
		Stages: []Stage{{Name: "Build", Jobs: []Job{{Sign: "b", Name: "B", Duration: 10 * time.Second}}}}, Outcomes: []Outcome{Success, Fail}}
	s := New(Options{Token: "t", Edition: "region", Now: func() time.Time { return t0 }}, p)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	get := func(path string) (int, map[string]any) { // path: after .../pipelines
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/oapi/v1/flow/pipelines"+path, nil)
		req.Header.Set("x-yunxiao-token", "t")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}

	status, latest := get("/7/runs/latestPipelineRun")
	if status != 200 || latest["pipelineRunId"] != float64(FirstRunID+5) {
		t.Fatalf("latest run: %d %v", status, latest["pipelineRunId"])
	}
	status, byID := get("/7/runs/1005")
	if status != 200 || !reflect.DeepEqual(byID, latest) {
		t.Errorf("run 1005: %d, differs from the latest run", status)
	}
	status, older := get("/7/runs/1002")
	if status != 200 || older["pipelineRunId"] != float64(1002) || older["status"] != "SUCCESS" {
		t.Errorf("run 1002: %d %v %v", status, older["pipelineRunId"], older["status"])
	}
	if want := p.RunsSince(t0, t0, t0.Add(-time.Hour), 100)[3]; want["pipelineRunId"] != int64(1002) || want["status"] != older["status"] {
		t.Errorf("ListPipelineRuns has run 1002 as %v", want)
	}
	for path, want := range map[string]int{"/7/runs/999": 404, "/7/runs/1006": 404, "/7/runs/x": 400, "/8/runs/1000": 404} {
		if status, _ := get(path); status != want {
			t.Errorf("%s: %d, want %d", path, status, want)
		}
	}
	if got := s.Requests(EndpointRun); got != 6 {
		t.Errorf("%d GetPipelineRun requests counted, want 6", got)
	}
	if got := s.PipelineRequests(7); got != 6 {
		t.Errorf("%d requests counted for pipeline 7, want 6", got)
	}

	for _, q := range []string{"?page=1&perPage=1", "?page=1&perPage=30", ""} {
		if status, _ := get(q); status != 200 {
			t.Errorf("ListPipelines%s: %d", q, status)
		}
	}
	if list, check := s.Requests(EndpointList), s.Requests(EndpointCheck); list != 3 || check != 1 {
		t.Errorf("counted %d ListPipelines requests, %d of them probes; want 3 and 1", list, check)
	}

	s.PinJSON(EndpointRun, 7, []byte(`{"pinned":true}`))
	if _, body := get("/7/runs/1002"); body["pinned"] != true {
		t.Errorf("a pinned answer was not served: %v", body)
	}
	s.Fault(7, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	if status, _ := get("/7/runs/1002"); status != http.StatusTeapot {
		t.Errorf("a fault was not applied: %d", status)
	}
}
