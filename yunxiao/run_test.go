package yunxiao

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/yunxiao-exporter/yunxiao_exporter/flowsim"
)

// TestGetPipelineRunAgainstSimulator: every run the simulator lists can be
// fetched by its id, in the state the listing gives it; a run waiting for
// approval can be followed after newer runs have started; runs that do not
// exist are not_found; pinned answers and faults reach GetPipelineRun.
func TestGetPipelineRunAgainstSimulator(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	release := flowsim.Pipeline{
		ID: 2001, Name: "release", TriggerMode: 1,
		// Run k=10 (id 1010) started 30 s before t0; 1000..1009 before it.
		Period: time.Minute, Phase: 10*time.Minute + 30*time.Second,
		Stages: []flowsim.Stage{
			{Name: "Build", Jobs: []flowsim.Job{{Sign: "build", Name: "Build", Duration: 10 * time.Second}}},
			{Name: "Approve", Jobs: []flowsim.Job{{Sign: "approve", Name: "Approve", Duration: 5 * time.Second, Approval: true}}},
		},
		Outcomes: []flowsim.Outcome{flowsim.Success, flowsim.Fail, flowsim.Waiting},
	}
	sim := flowsim.New(flowsim.Options{Token: testToken, OrganizationID: testOrg, Now: func() time.Time { return t0 }}, release)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c, _ := newClient(t, testOptions(srv.URL))
	ctx := context.Background()

	latest, err := c.GetLatestPipelineRun(ctx, 2001)
	if err != nil || latest == nil || latest.PipelineRunID != 1010 {
		t.Fatalf("GetLatestPipelineRun = %+v, %v; want run 1010", latest, err)
	}
	same, err := c.GetPipelineRun(ctx, 2001, latest.PipelineRunID)
	if err != nil || !reflect.DeepEqual(same, latest) {
		t.Fatalf("GetPipelineRun(1010) = %+v, %v\nwant the latest run %+v", same, err, latest)
	}

	listed, err := c.ListPipelineRuns(ctx, 2001, 0)
	if err != nil || len(listed) != 11 {
		t.Fatalf("ListPipelineRuns = %d runs, %v; want 11", len(listed), err)
	}
	for _, s := range listed {
		r, err := c.GetPipelineRun(ctx, 2001, s.PipelineRunID)
		if err != nil {
			t.Fatalf("GetPipelineRun(%d): %v", s.PipelineRunID, err)
		}
		if r.PipelineRunID != s.PipelineRunID || r.Status != s.Status || r.CreateTime != s.StartTime || r.TriggerMode != s.TriggerMode {
			t.Errorf("run %d: GetPipelineRun %s from %d, listed %s from %d", s.PipelineRunID, r.Status, r.CreateTime, s.Status, s.StartTime)
		}
	}

	waiting, err := c.GetPipelineRun(ctx, 2001, 1008)
	if err != nil || waiting.Status != "WAITING" || len(waiting.Stages) != 2 || waiting.Stages[1].StageInfo == nil ||
		waiting.Stages[1].StageInfo.Jobs[0].Status != "WAITING" {
		t.Fatalf("GetPipelineRun(1008) = %+v, %v; want a run waiting at its approval job", waiting, err)
	}

	for _, id := range []ID{999, 1011} {
		_, err := c.GetPipelineRun(ctx, 2001, id)
		if e := mustFail(t, err, ReasonNotFound); e.Endpoint != EndpointGetPipelineRun {
			t.Errorf("run %d: endpoint %q", id, e.Endpoint)
		}
	}
	_, err = c.GetPipelineRun(ctx, 2002, 1000)
	mustFail(t, err, ReasonNotFound)
	if got, want := sim.Requests(flowsim.EndpointRun), int64(1+11+1+3); got != want {
		t.Errorf("simulator counted %d GetPipelineRun requests, want %d", got, want)
	}

	sim.PinJSON(flowsim.EndpointRun, 2001, []byte(`{"errorCode":"SystemBusy","errorMessage":"busy"}`))
	_, err = c.GetPipelineRun(ctx, 2001, 1008)
	if e := mustFail(t, err, ReasonAPIError); e.Code != "SystemBusy" {
		t.Errorf("pinned error object: %v", err)
	}
	if _, err := c.GetLatestPipelineRun(ctx, 2001); err != nil {
		t.Errorf("a pin on GetPipelineRun reached GetLatestPipelineRun: %v", err)
	}
	sim.Unpin(flowsim.EndpointRun, 2001)
	sim.Fault(2001, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	_, err = c.GetPipelineRun(ctx, 2001, 1008)
	mustFail(t, err, ReasonServerError)
	sim.Fault(2001, nil)
	if _, err := c.GetPipelineRun(ctx, 2001, 1008); err != nil {
		t.Errorf("after the fault: %v", err)
	}
}
