package flowsim

import (
	"strconv"
	"time"
)

// The shape of GetLatestPipelineRun's answer, including fields the exporter
// must ignore (globalParams holds secrets; sources and results are noise).
type runJSON struct {
	PipelineID        int64         `json:"pipelineId"`
	PipelineRunID     int64         `json:"pipelineRunId"`
	Status            string        `json:"status"`
	TriggerMode       int           `json:"triggerMode"`
	CreateTime        int64         `json:"createTime"`
	UpdateTime        int64         `json:"updateTime"`
	CreatorAccountID  string        `json:"creatorAccountId"`
	ModifierAccountID string        `json:"modifierAccountId"`
	PipelineType      string        `json:"pipelineType"`
	GlobalParams      []globalParam `json:"globalParams"`
	Groups            []group       `json:"groups"`
	Sources           []source      `json:"sources"`
	StageGroup        []string      `json:"stageGroup"`
	Stages            []stageJSON   `json:"stages"`
}

type globalParam struct {
	Key       string `json:"key"`
	Value     string `json:"value"`
	Encrypted bool   `json:"encrypted"`
}

type group struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

type source struct {
	Name string            `json:"name"`
	Sign string            `json:"sign"`
	Type string            `json:"type"`
	Data map[string]string `json:"data"`
}

type stageJSON struct {
	Index     string         `json:"index"`
	Name      string         `json:"name"`
	StageInfo *stageInfoJSON `json:"stageInfo,omitempty"`
}

type stageInfoJSON struct {
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	StartTime int64     `json:"startTime"`
	EndTime   int64     `json:"endTime"`
	Jobs      []jobJSON `json:"jobs"`
}

type jobJSON struct {
	ID        int64  `json:"id"`
	JobSign   string `json:"jobSign"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	StartTime int64  `json:"startTime"`
	EndTime   int64  `json:"endTime"`
	Params    string `json:"params"`
	Result    string `json:"result"`
	Actions   []any  `json:"actions"`
}

// forever marks a job that does not end (approval not given, stuck).
const forever = time.Duration(1<<63 - 1)

// FirstRunID is the id of a pipeline's run 0; run k is FirstRunID + k.
const FirstRunID = 1000

// RunAt returns the latest run of p at time now, for a simulator started at
// simStart, or nil when p has not run yet.
func (p *Pipeline) RunAt(simStart, now time.Time) *runJSON {
	if len(p.Outcomes) == 0 || p.Period <= 0 || len(p.Stages) == 0 {
		return nil
	}
	epoch := simStart.Add(-p.Phase)
	if now.Before(epoch) {
		return nil
	}
	return p.runK(epoch, int64(now.Sub(epoch)/p.Period), now)
}

// RunByID returns run runID of p as it is at time now (what GetPipelineRun
// answers), or nil when p has no such run (yet). It is the same run, in
// the same state, as RunAt gives while it is the latest and RunsSince
// lists: a run that waits for approval goes on waiting after newer runs
// have started.
func (p *Pipeline) RunByID(simStart, now time.Time, runID int64) *runJSON {
	latest := p.RunAt(simStart, now)
	if latest == nil || runID < FirstRunID || runID > latest.PipelineRunID {
		return nil
	}
	return p.runK(simStart.Add(-p.Phase), runID-FirstRunID, now)
}

// RunsSince returns the runs of p started at or after since, newest first,
// at most limit of them, as ListPipelineRuns lists them.
func (p *Pipeline) RunsSince(simStart, now, since time.Time, limit int) []map[string]any {
	if len(p.Outcomes) == 0 || p.Period <= 0 || len(p.Stages) == 0 {
		return nil
	}
	epoch := simStart.Add(-p.Phase)
	if now.Before(epoch) {
		return nil
	}
	var out []map[string]any
	for k := int64(now.Sub(epoch) / p.Period); k >= 0 && len(out) < limit; k-- {
		r := p.runK(epoch, k, now)
		if r.CreateTime < since.UnixMilli() {
			break
		}
		end := int64(0)
		switch r.Status {
		case "SUCCESS", "FAIL", "CANCELED":
			end = r.UpdateTime
		}
		out = append(out, map[string]any{"pipelineRunId": r.PipelineRunID, "status": r.Status, "triggerMode": r.TriggerMode,
			"startTime": r.CreateTime, "endTime": end, "creatorAccountId": r.CreatorAccountID})
	}
	return out
}

// runK is run number k of p (started at epoch + k·Period) as of now.
func (p *Pipeline) runK(epoch time.Time, k int64, now time.Time) *runJSON {
	runStart := epoch.Add(time.Duration(k) * p.Period)
	outcome := p.Outcomes[k%int64(len(p.Outcomes))]
	plan := p.plan(outcome, k)

	run := &runJSON{
		PipelineID:        p.ID,
		PipelineRunID:     FirstRunID + k,
		TriggerMode:       p.TriggerMode,
		CreateTime:        runStart.UnixMilli(),
		UpdateTime:        runStart.UnixMilli(),
		CreatorAccountID:  "1222222222",
		ModifierAccountID: "1222222222",
		PipelineType:      "default",
		GlobalParams: []globalParam{
			{Key: "DEPLOY_ENV", Value: "production", Encrypted: false},
			{Key: "REGISTRY_PASSWORD", Value: "sim-registry-secret-do-not-export", Encrypted: true},
		},
		Groups:     []group{{ID: 1, Name: "default"}},
		Sources:    []source{{Name: "repo", Sign: "repo-1", Type: "codeup", Data: map[string]string{"repo": "https://codeup.aliyun.com/demo.git", "branch": "main"}}},
		StageGroup: []string{},
	}
	elapsed := now.Sub(runStart)
	anyRunning, anyWaiting := false, false
	update := time.Duration(0)
	stageStart := time.Duration(0)
	stopped := false // a failed, canceled or waiting stage stops the run there
	for si, st := range p.Stages {
		sj := stageJSON{Index: "Group0-Stage" + strconv.Itoa(si), Name: st.Name}
		if stopped || elapsed < stageStart {
			run.Stages = append(run.Stages, sj)
			continue
		}
		info := &stageInfoJSON{Name: st.Name, StartTime: runStart.Add(stageStart).UnixMilli()}
		stageEnd := stageStart
		running, waiting, failed, canceled := false, false, false, false
		for ji, job := range st.Jobs {
			jp := plan[[2]int{si, ji}]
			end := stageStart + jp.duration
			jj := jobJSON{
				ID:        p.ID*100000 + k*100 + int64(si*10+ji),
				JobSign:   job.Sign,
				Name:      job.Name,
				StartTime: runStart.Add(stageStart).UnixMilli(),
				Params:    "{}",
				Result:    `{"data":{"ARTIFACTS":"[]"},"successful":true}`,
				Actions:   []any{},
			}
			switch {
			case jp.duration == forever && jp.status == "WAITING":
				jj.Status, waiting = "WAITING", true
			case jp.duration == forever || elapsed < end:
				jj.Status, running = "RUNNING", true
			default:
				jj.Status = jp.status
				jj.EndTime = runStart.Add(end).UnixMilli()
				update = max(update, end)
				failed = failed || jp.status == "FAIL"
				canceled = canceled || jp.status == "CANCELED"
			}
			if jp.duration != forever {
				stageEnd = max(stageEnd, end)
			}
			info.Jobs = append(info.Jobs, jj)
		}
		update = max(update, stageStart)
		switch {
		case running:
			info.Status, anyRunning = "RUNNING", true
		case waiting:
			info.Status, anyWaiting = "WAITING", true
		case failed:
			info.Status = "FAIL"
		case canceled:
			info.Status = "CANCELED"
		default:
			info.Status = "SUCCESS"
		}
		if !running && !waiting {
			info.EndTime = runStart.Add(stageEnd).UnixMilli()
		}
		stopped = running || waiting || failed || canceled
		sj.StageInfo = info
		run.Stages = append(run.Stages, sj)
		stageStart = stageEnd
	}
	run.UpdateTime = runStart.Add(update).UnixMilli()
	switch {
	case anyRunning:
		run.Status = "RUNNING"
	case anyWaiting:
		run.Status = "WAITING"
	case outcome == Stuck:
		run.Status = "RUNNING"
	default:
		run.Status = string(outcome)
	}
	return run
}

type jobPlan struct {
	duration time.Duration
	status   string
}

// plan decides every job's duration and final status for one run.
func (p *Pipeline) plan(outcome Outcome, k int64) map[[2]int]jobPlan {
	plan := map[[2]int]jobPlan{}
	var total time.Duration
	for si, st := range p.Stages {
		var longest time.Duration
		for ji, job := range st.Jobs {
			plan[[2]int{si, ji}] = jobPlan{duration: job.Duration, status: "SUCCESS"}
			longest = max(longest, job.Duration)
		}
		total += longest
	}
	switch outcome {
	case Fail:
		si := int(k) % len(p.Stages)
		jp := plan[[2]int{si, 0}]
		plan[[2]int{si, 0}] = jobPlan{duration: jp.duration, status: "FAIL"}
	case Canceled:
		// Cancel halfway: the jobs running then end CANCELED at that moment.
		cut, at := total/2, time.Duration(0)
		for si, st := range p.Stages {
			var longest time.Duration
			for ji, job := range st.Jobs {
				longest = max(longest, job.Duration)
				if at <= cut && cut < at+job.Duration {
					plan[[2]int{si, ji}] = jobPlan{duration: cut - at, status: "CANCELED"}
				}
			}
			at += longest
		}
	case Waiting:
		si, ji := len(p.Stages)-1, 0
		for s, st := range p.Stages {
			for j, job := range st.Jobs {
				if job.Approval {
					si, ji = s, j
				}
			}
		}
		plan[[2]int{si, ji}] = jobPlan{duration: forever, status: "WAITING"}
	case Stuck:
		plan[[2]int{len(p.Stages) / 2, 0}] = jobPlan{duration: forever, status: "RUNNING"}
	}
	return plan
}

// DemoPipelines are the pipelines --demo shows: a few that pass and fail
// over minutes, one that waits for approval, one stuck for hours, one that
// never ran, and one with a CJK name.
func DemoPipelines() []Pipeline {
	build := Stage{Name: "Build", Jobs: []Job{
		{Sign: "compile", Name: "Compile", Duration: 25 * time.Second},
		{Sign: "unit-test", Name: "Unit tests", Duration: 40 * time.Second},
	}}
	test := Stage{Name: "Test", Jobs: []Job{{Sign: "integration", Name: "Integration tests", Duration: 50 * time.Second}}}
	pkg := Stage{Name: "Package", Jobs: []Job{{Sign: "image", Name: "Docker image", Duration: 20 * time.Second}}}
	return []Pipeline{
		{ID: 1001, Name: "backend-build", TriggerMode: 3, Period: 3 * time.Minute, Phase: 100 * time.Second,
			Stages: []Stage{build, test, pkg}, Outcomes: []Outcome{Success, Success, Fail, Success}},
		{ID: 1002, Name: "frontend-build", TriggerMode: 3, Period: 2 * time.Minute, Phase: 30 * time.Second,
			Stages: []Stage{build, pkg}, Outcomes: []Outcome{Success, Success, Success, Canceled}},
		{ID: 1003, Name: "deploy-production", TriggerMode: 1, Period: 5 * time.Minute, Phase: 200 * time.Second,
			Stages: []Stage{pkg, {Name: "Approval", Jobs: []Job{{Sign: "approve", Name: "Release approval", Duration: 30 * time.Second, Approval: true}}},
				{Name: "Deploy", Jobs: []Job{{Sign: "deploy", Name: "Deploy to ACK", Duration: 45 * time.Second}}}},
			Outcomes: []Outcome{Waiting, Success}},
		{ID: 1004, Name: "nightly-e2e", TriggerMode: 2, Period: 4 * time.Minute, Phase: 150 * time.Second,
			Stages: []Stage{build, test}, Outcomes: []Outcome{Fail, Success}},
		{ID: 1005, Name: "data-sync", TriggerMode: 5, Period: 24 * time.Hour, Phase: 150 * time.Minute,
			Stages:   []Stage{build, {Name: "Sync", Jobs: []Job{{Sign: "sync", Name: "Sync warehouse", Duration: 10 * time.Minute}}}, pkg},
			Outcomes: []Outcome{Stuck}},
		{ID: 1006, Name: "release-notes", TriggerMode: 1, Period: time.Hour, Stages: []Stage{pkg}},
		{ID: 1007, Name: "移动端构建", TriggerMode: 6, Period: 150 * time.Second, Phase: 60 * time.Second,
			Stages:   []Stage{{Name: "构建", Jobs: []Job{{Sign: "android", Name: "Android 构建", Duration: 35 * time.Second}, {Sign: "ios", Name: "iOS 构建", Duration: 45 * time.Second}}}},
			Outcomes: []Outcome{Success, Fail, Success}},
	}
}
