package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/yunxiao-exporter/yunxiao_exporter/collector"
)

// Scenarios are the test groups of alerts_test.yml, in order.
func Scenarios() []Scenario {
	return []Scenario{
		healthy(),
		redUntilGreen(),
		restartAndMissedScrape(),
		runFailedHAPair(),
		noRecentSuccess(),
		runStuck(),
		waitingTooLong(),
		partialOutage(),
		fullOutage(),
		rateLimited(),
		failureRatioRollout(),
		failureRatioFirstFailures(),
		failureRatioHAPair(),
		reshard(),
		emptyShard(),
		exporterDown(),
		exporterAbsent(),
		configReloadFailed(),
		discoveryFailing(),
		pipelineLabels(),
		webhookSilentStops(),
		webhookSilentNoRuns(),
	}
}

// Alert names.
const (
	runFailed       = "YunxiaoPipelineRunFailed"
	noSuccess       = "YunxiaoPipelineNoRecentSuccess"
	runStuckAlert   = "YunxiaoPipelineRunStuck"
	waitingAlert    = "YunxiaoPipelineWaitingTooLong"
	fetchFailing    = "YunxiaoPipelineFetchFailing"
	dataStale       = "YunxiaoPipelineDataStale"
	failureRatio    = "YunxiaoPipelineFailureRatioHigh"
	apiDown         = "YunxiaoApiDown"
	apiRateLimited  = "YunxiaoApiRateLimited"
	exporterDownA   = "YunxiaoExporterDown"
	exporterAbsentA = "YunxiaoExporterAbsent"
	reloadFailed    = "YunxiaoExporterConfigReloadFailed"
	discoveryFail   = "YunxiaoDiscoveryFailing"
	webhookSilent   = "YunxiaoWebhookSilent"
)

// m is a story time of x minutes (negative: before the story starts).
func m(x int) time.Duration { return time.Duration(x) * time.Minute }

const (
	hour = time.Hour
	day  = 24 * time.Hour
)

// Instances.
const (
	instA = "a:10036"
	instB = "b:10036"
	instC = "c:10036"
	instD = "d:10036"
	instE = "e:10036"
	instF = "f:10036"
)

// pipes is the pipelines: list of a config, from "id name" items; after
// the name, "history" turns run_history on for that pipeline and each
// name=value gives it that label (pipelines[].labels), e.g.
// "1001 backend-build history team=payments".
func pipes(items ...string) string {
	var b strings.Builder
	b.WriteString("pipelines:\n")
	for _, it := range items {
		f := strings.Fields(it)
		fmt.Fprintf(&b, "  - id: %s\n    name: %s\n", f[0], f[1])
		var labels []string
		for _, opt := range f[2:] {
			switch name, value, ok := strings.Cut(opt, "="); {
			case opt == "history":
				b.WriteString("    run_history: true\n")
			case ok:
				labels = append(labels, fmt.Sprintf("%s: %s", name, value))
			default:
				panic("pipes: unknown option " + opt)
			}
		}
		if len(labels) > 0 {
			fmt.Fprintf(&b, "    labels: {%s}\n", strings.Join(labels, ", "))
		}
	}
	return b.String()
}

func spec(config string) ExporterSpec { return ExporterSpec{Config: config} }

func healthy() Scenario {
	return Scenario{
		Name: "healthy: nothing fires",
		Doc: `A healthy exporter and four pipelines over three hours: nothing fires.
1001 passed before the start and passes again at minutes 70 and 130
(run_history on: its 15 runs_total series are born at 0); 1002 runs 30
minutes (three jobs of 10) and passes; 1003's last run was canceled; 1004
has never run (no run series at all).`,
		Origin: 2 * hour,
		Script: func(r *Recorder) {
			api := r.API()
			api.Pipeline(1001, "backend-build",
				ran(11, Push, m(-90), m(-60), "SUCCESS"), ran(12, Push, m(60), m(70), "SUCCESS"), ran(13, Push, m(120), m(130), "SUCCESS"))
			api.Pipeline(1002, "frontend-build", ran(21, Push, m(-100), m(-90), "SUCCESS"), &Run{ID: 22, Trigger: Push, Created: 0,
				Status: []Change{{0, "RUNNING"}, {m(30), "SUCCESS"}},
				Jobs: []Job{
					{Stage: "Build", Sign: "build", Name: "Build", Start: 0, End: m(10), Status: "SUCCESS"},
					{Stage: "Test", Sign: "test", Name: "Test", Start: m(10), End: m(20), Status: "SUCCESS"},
					{Stage: "Package", Sign: "image", Name: "Docker image", Start: m(20), End: m(30), Status: "SUCCESS"},
				}})
			api.Pipeline(1003, "deploy-production", ran(31, Manual, m(-10), m(-5), "CANCELED"))
			api.Pipeline(1004, "release-notes")
			r.Exporter(instA, spec(pipes("1001 backend-build history", "1002 frontend-build", "1003 deploy-production", "1004 release-notes")))
			r.RunTo(181)
		},
		Expect: quietAll(10, 180),
	}
}

func redUntilGreen() Scenario {
	f1001 := P("1001", "backend-build").Team("payments")
	return Scenario{
		Name: "RunFailed: red until green",
		Doc: `YunxiaoPipelineRunFailed stays firing while a rerun is in progress and
resolves when a run finishes SUCCESS. 1001's latest run failed before the
start; a rerun starts at minute 10 (the FAIL run_status series ends,
RUNNING begins: the last *finished* run is still the failed one) and passes
at minute 20. 1002 passed all along. No run_history: the last finished run
is known from the latest runs the exporter fetched. 1001 is team payments's
(pipelines[].labels): its alert carries team="payments".`,
		Origin: hour,
		Script: func(r *Recorder) {
			api := r.API()
			api.Pipeline(1001, "backend-build", ran(101, Push, m(-30), m(-20), "FAIL"), ran(102, Push, m(10), m(20), "SUCCESS"))
			api.Pipeline(1002, "frontend-build", ran(201, Push, m(-40), m(-35), "SUCCESS"))
			r.Exporter(instA, spec(pipes("1001 backend-build team=payments", "1002 frontend-build")))
			r.RunTo(31)
		},
		Expect: []Case{
			fires(5, runFailed, f1001),
			fires(15, runFailed, f1001).because("The rerun is in progress: still firing."),
			fires(19, runFailed, f1001),
			quiet(20, runFailed).because("The rerun passed: resolved."),
			quiet(29, runFailed),
		},
	}
}

func restartAndMissedScrape() Scenario {
	f1001, f1002 := P("1001", "backend-build").Team("payments"), P("1002", "frontend-build")
	return Scenario{
		Name: "RunFailed: exporter restart and a missed scrape",
		Doc: `The exporter is replaced at minute 10 (a new pod, so a new instance): a
leaves service discovery (staleness markers at minute 10), b is scraped
from minute 12, its counters born again. A scrape of b fails at minute 20.
1001 has run_history: b seeds its last finished run (FAIL) at once. 1002
has no run_history and a rerun is in progress when b starts: b cannot know
the last finished run until the rerun finishes (best effort, documented),
so 1002's alert resolves a gapWindow after a's series end. 1001 is team
payments's: its alert keeps team="payments" across the replacement.`,
		Origin: hour,
		Script: func(r *Recorder) {
			api := r.API()
			api.Pipeline(1001, "backend-build", ran(101, Push, m(-30), m(-20), "FAIL"))
			api.Pipeline(1002, "frontend-build", ran(201, Push, m(-30), m(-25), "FAIL"), running(202, Push, m(8)))
			cfg := spec(pipes("1001 backend-build history team=payments", "1002 frontend-build"))
			a := r.Exporter(instA, cfg)
			r.RunTo(10)
			a.Remove()
			r.RunTo(12)
			b := r.Exporter(instB, cfg)
			r.RunTo(20)
			b.MissScrape()
			r.RunTo(30)
		},
		Expect: []Case{
			fires(9, runFailed, f1001, f1002),
			fires(11, runFailed, f1001, f1002).because("Between the two exporters: no series at all for two minutes, still firing."),
			fires(13, runFailed, f1001).because("One alert for 1001, not one per instance; 1002's last finished run is unknown to b."),
			fires(20, runFailed, f1001).because("The failed scrape resolves nothing."),
			fires(29, runFailed, f1001),
		},
	}
}

func runFailedHAPair() Scenario {
	f1001 := P("1001", "backend-build")
	return Scenario{
		Name: "RunFailed: HA pair",
		Doc: `Two replicas (a and b) watch the same pipelines and are both scraped: one
alert per pipeline, without instance. b's scrape fails at minute 5.`,
		Origin: hour,
		Script: func(r *Recorder) {
			api := r.API()
			api.Pipeline(1001, "backend-build", ran(101, Push, m(-30), m(-20), "FAIL"))
			api.Pipeline(1002, "frontend-build", ran(201, Push, m(-30), m(-25), "SUCCESS"))
			cfg := spec(pipes("1001 backend-build", "1002 frontend-build"))
			r.Exporter(instA, cfg)
			b := r.Exporter(instB, cfg)
			r.RunTo(5)
			b.MissScrape()
			r.RunTo(20)
		},
		Expect: []Case{
			fires(3, runFailed, f1001),
			fires(5, runFailed, f1001).because("b's failed scrape changes nothing."),
			fires(15, runFailed, f1001),
		},
	}
}

func noRecentSuccess() Scenario {
	nightly, train := P("2001", "nightly-e2e"), P("2003", "release-train").Team("release")
	return Scenario{
		Name: "NoRecentSuccess",
		Doc: `YunxiaoPipelineNoRecentSuccess (7d, for 15m).
- 2001 nightly-e2e (run_history) last passed 7 days before the start (the
  run the history seed finds at the edge of its 7-day window), has failed
  every night since, runs from minute 0 and passes at minute 40; its last
  success becomes older than 7d at minute 2. A scrape fails at minute 20.
- 2002 archive-job last ran and passed 7 days and 30 minutes ago: it does
  not run any more, quiet.
- 2003 release-train (run_history, team release) knows of no success in
  the 7 days the seed looked back at (the gauge is absent), and runs: it
  fires, with its team.
- 2004 backend-build passed an hour ago: quiet.
- 2005 mobile-build: no run_history, its last run failed, no success seen
  since the exporter started (absent): unknown, quiet (best effort).`,
		Origin: 7*day + hour,
		Script: func(r *Recorder) {
			api := r.API()
			nightlies := []*Run{ran(300, Scheduled, -7*day, -7*day+m(1), "SUCCESS")}
			for i := 6; i >= 1; i-- {
				nightlies = append(nightlies, ran(int64(307-i), Scheduled, -time.Duration(i)*day, -time.Duration(i)*day+m(20), "FAIL"))
			}
			nightlies = append(nightlies, ran(307, Scheduled, 0, m(40), "SUCCESS"))
			api.Pipeline(2001, "nightly-e2e", nightlies...)
			api.Pipeline(2002, "archive-job", ran(400, Scheduled, -7*day-m(30), -7*day-m(10), "SUCCESS"))
			api.Pipeline(2003, "release-train", ran(500, Scheduled, -25*hour, -24*hour, "FAIL"),
				ran(501, Scheduled, m(-60), m(-40), "FAIL"), ran(502, Scheduled, m(25), m(30), "FAIL"))
			api.Pipeline(2004, "backend-build", ran(600, Push, m(-120), m(-60), "SUCCESS"))
			api.Pipeline(2005, "mobile-build", ran(700, Push, m(-60), m(-30), "FAIL"))
			a := r.Exporter(instA, spec(pipes("2001 nightly-e2e history", "2002 archive-job", "2003 release-train history team=release",
				"2004 backend-build", "2005 mobile-build")))
			r.RunTo(20)
			a.MissScrape()
			r.RunTo(45)
		},
		Expect: []Case{
			quiet(14, noSuccess).because("2003 pending since minute 0, 2001 since minute 2."),
			fires(16, noSuccess, train),
			fires(18, noSuccess, nightly, train),
			fires(20, noSuccess, nightly, train).because("The failed scrape resolves nothing."),
			fires(41, noSuccess, train).because("2001 passed at minute 40."),
		},
	}
}

func runStuck() Scenario {
	dataSync, queue := P("3001", "data-sync"), P("3005", "queue-bound").Team("platform")
	return Scenario{
		Name: "RunStuck: no progress while running",
		Doc: `YunxiaoPipelineRunStuck (no progress for 2h, for 5m). Progress is the latest
start or end of any stage or job of the latest run (its createTime before
any started).
- 3001 data-sync (on replica b) RUNNING since 0; its sync job starts at
  minute 10 and ends at 150 (SUCCESS): no progress in between. b's scrape
  fails at minute 140.
- 3002 deploy-production RUNNING since 0 with an approval gate: its job
  WAITING from minute 10 to 190, then approved (progress moves).
- 3003 deploy-staging waits at the run level (run WAITING, no job started)
  for 190 minutes, then runs.
- 3004 secret-sync RUNNING since 0, its fetch fails (500) from minute 60:
  its data is stale (yunxiao_pipeline_up 0), which never makes a run stuck.
- 3005 queue-bound (team platform) QUEUED since 0, nothing started:
  stuck (every active status counts).
- 3006 long-build passes at minute 10 after 3h of steady progress: long,
  not stuck.`,
		Origin: 3 * hour,
		Script: func(r *Recorder) {
			api := r.API()
			api.Pipeline(3001, "data-sync", &Run{ID: 1, Trigger: Scheduled, Created: 0,
				Status: []Change{{0, "RUNNING"}, {m(150), "SUCCESS"}},
				Jobs: []Job{
					{Stage: "Build", Sign: "prepare", Name: "Prepare", Start: 0, End: m(10), Status: "SUCCESS"},
					{Stage: "Sync", Sign: "sync", Name: "Sync warehouse", Start: m(10), End: m(150), Status: "SUCCESS"},
				}})
			api.Pipeline(3002, "deploy-production", &Run{ID: 2, Trigger: Manual, Created: 0,
				Status: []Change{{0, "RUNNING"}},
				Jobs: []Job{
					{Stage: "Build", Sign: "build", Name: "Build", Start: 0, End: m(10), Status: "SUCCESS"},
					{Stage: "Approval", Sign: "approve", Name: "Release approval", Start: m(10), End: m(190), Status: "SUCCESS", Waiting: true},
					{Stage: "Deploy", Sign: "deploy", Name: "Deploy to ACK", Start: m(190), End: Never},
				}})
			api.Pipeline(3003, "deploy-staging", &Run{ID: 3, Trigger: Manual, Created: 0,
				Status: []Change{{0, "WAITING"}, {m(190), "RUNNING"}},
				Jobs:   []Job{{Stage: "Deploy", Sign: "deploy", Name: "Deploy to ACK", Start: m(190), End: Never}}})
			api.Pipeline(3004, "secret-sync", &Run{ID: 4, Trigger: Scheduled, Created: 0,
				Status: []Change{{0, "RUNNING"}},
				Jobs: []Job{
					{Stage: "Build", Sign: "build", Name: "Build", Start: 0, End: m(10), Status: "SUCCESS"},
					{Stage: "Sync", Sign: "sync", Name: "Sync secrets", Start: m(10), End: Never},
				}})
			api.Fault(Fault{Pipeline: 3004, From: m(60), Status: 500, Code: "InternalError", Message: "internal error"})
			api.Pipeline(3005, "queue-bound", &Run{ID: 5, Trigger: Push, Created: 0, Status: []Change{{0, "QUEUED"}}})
			api.Pipeline(3006, "long-build", &Run{ID: 6, Trigger: Push, Created: m(-170),
				Status: []Change{{m(-170), "RUNNING"}, {m(10), "SUCCESS"}},
				Jobs: []Job{
					{Stage: "Build", Sign: "build", Name: "Build", Start: m(-170), End: m(-120), Status: "SUCCESS"},
					{Stage: "Test", Sign: "test", Name: "Test", Start: m(-120), End: m(-60), Status: "SUCCESS"},
					{Stage: "Package", Sign: "image", Name: "Docker image", Start: m(-60), End: m(10), Status: "SUCCESS"},
				}})
			r.Exporter(instA, spec(pipes("3002 deploy-production", "3003 deploy-staging", "3004 secret-sync", "3005 queue-bound team=platform", "3006 long-build")))
			b := r.Exporter(instB, spec(pipes("3001 data-sync")))
			r.RunTo(140)
			b.MissScrape()
			r.RunTo(200)
		},
		Expect: []Case{
			quiet(119, runStuckAlert).because("Nothing has been without progress for 2h yet."),
			quiet(125, runStuckAlert).because("3005 has been since minute 121: pending."),
			fires(127, runStuckAlert, queue.V("2h 7m 0s")),
			fires(137, runStuckAlert, dataSync.V("2h 7m 0s"), queue.V("2h 17m 0s")).because("3001 since minute 131. 3002-3004 wait or are stale: quiet."),
			fires(140, runStuckAlert, dataSync.V("2h 10m 0s"), queue.V("2h 20m 0s")).because("The failed scrape resolves nothing."),
			fires(151, runStuckAlert, queue.V("2h 31m 0s")).because("3001's job finished at minute 150: progress, and the run passed."),
			fires(195, runStuckAlert, queue.V("3h 15m 0s")).because("3002 and 3003 approved at minute 190 after 3h of waiting: not stuck."),
		},
	}
}

func waitingTooLong() Scenario {
	prod, staging := P("4001", "deploy-production"), P("4002", "deploy-staging")
	approval := func(id int64, approved time.Duration) *Run {
		r := &Run{ID: id, Trigger: Manual, Created: 0, Status: []Change{{0, "WAITING"}},
			Jobs: []Job{{Stage: "Approval", Sign: "approve", Name: "Release approval", Start: 0, End: approved, Status: "SUCCESS", Waiting: true}}}
		if approved != Never {
			r.Status = append(r.Status, Change{approved, "RUNNING"})
			r.Jobs = append(r.Jobs, Job{Stage: "Deploy", Sign: "deploy", Name: "Deploy to ACK", Start: approved, End: Never})
		}
		return r
	}
	return Scenario{
		Name: "WaitingTooLong",
		Doc: `YunxiaoPipelineWaitingTooLong (for 1h). 4001 waits for an approval from
minute 0 and is approved at minute 75 (replica a, whose scrape fails at
minute 30: that must not restart the hour). 4002 waits on both replicas of
an HA pair, b and c (one alert). 4003 waits 30 minutes, then passes.`,
		Origin: hour,
		Script: func(r *Recorder) {
			api := r.API()
			api.Pipeline(4001, "deploy-production", approval(1, m(75)))
			api.Pipeline(4002, "deploy-staging", approval(2, Never))
			hotfix := approval(3, m(30))
			hotfix.Status, hotfix.Jobs = []Change{{0, "WAITING"}, {m(30), "SUCCESS"}}, hotfix.Jobs[:1]
			api.Pipeline(4003, "hotfix", hotfix)
			a := r.Exporter(instA, spec(pipes("4001 deploy-production")))
			r.Exporter(instB, spec(pipes("4002 deploy-staging", "4003 hotfix")))
			r.Exporter(instC, spec(pipes("4002 deploy-staging", "4003 hotfix")))
			r.RunTo(30)
			a.MissScrape()
			r.RunTo(100)
		},
		Expect: []Case{
			quiet(59, waitingAlert),
			fires(61, waitingAlert, prod, staging),
			fires(80, waitingAlert, staging).because("4001 approved at minute 75."),
		},
	}
}

func partialOutage() Scenario {
	secret := P("5001", "secret-project").Team("security")
	return Scenario{
		Name: "partial outage: one pipeline fails, the API works",
		Doc: `Partial outage. yunxiao_up stays 1 (the probe of the API as a whole).
The fetches of 5001 (team security) fail with 403 (its permission was
revoked) from minute 5 to 39 on both replicas, its last good data kept
(fetched at minute 4). 5002
fails on replica a only (a's token lost access to it); replica b has it
(HA pair): quiet. 5003 is fine. Replica a's scrape fails at minute 25.`,
		Origin: hour,
		Script: func(r *Recorder) {
			api := r.API()
			api.Pipeline(5001, "secret-project", ran(51, Push, m(-30), m(-20), "SUCCESS"))
			api.Pipeline(5002, "frontend-build", ran(52, Push, m(-30), m(-20), "SUCCESS"))
			api.Pipeline(5003, "backend-build", ran(53, Push, m(-30), m(-20), "SUCCESS"))
			forbidden := Fault{Status: 403, Code: "Forbidden", Message: "no permission on this pipeline"}
			f := forbidden
			f.Pipeline, f.From, f.To = 5001, m(5), m(40)
			api.Fault(f)
			f = forbidden
			f.Pipeline, f.From, f.Token = 5002, m(5), "pt-replica-a"
			api.Fault(f)
			cfg := pipes("5001 secret-project team=security", "5002 frontend-build", "5003 backend-build")
			a := r.Exporter(instA, ExporterSpec{Token: "pt-replica-a", Config: cfg})
			r.Exporter(instB, ExporterSpec{Token: "pt-replica-b", Config: cfg})
			r.RunTo(25)
			a.MissScrape()
			r.RunTo(60)
		},
		Expect: []Case{
			quiet(14, fetchFailing),
			fires(16, fetchFailing, secret),
			fires(25, fetchFailing, secret).because("The failed scrape resolves nothing."),
			quiet(41, fetchFailing).because("Fetched again at minute 40."),
			quiet(19, dataStale).because("Data exactly 15m old at minute 19: not more."),
			fires(21, dataStale, secret.V("17m 0s")),
			fires(25, dataStale, secret.V("21m 0s")),
			quiet(41, dataStale),
			quiet(30, apiDown),
			quiet(30, apiRateLimited),
		},
	}
}

func fullOutage() Scenario {
	deleted := P("6003", "deleted-pipeline")
	return Scenario{
		Name: "full outage and recovery",
		Doc: `Full outage: the API cannot be reached (connections closed unanswered) from
minute 10 to 39: yunxiao_up 0, every fetch fails, data frozen as fetched
at minute 9. It recovers at minute 40: 6001 is fetched again at once; 6002
answers 503 until minute 50 (its part of the service recovers later); 6003
was deleted meanwhile (404). A scrape fails at minute 20. YunxiaoApiDown
says it once; FetchFailing and DataStale stay quiet during the outage and
15m after it (without that, recovery would fire DataStale for 6002 and
6003 at minute 40); then 6003 alerts.`,
		Origin: hour,
		Script: func(r *Recorder) {
			api := r.API()
			api.Pipeline(6001, "backend-build", ran(61, Push, m(-30), m(-20), "SUCCESS"))
			api.Pipeline(6002, "frontend-build", ran(62, Push, m(-30), m(-20), "SUCCESS"))
			api.Pipeline(6003, "deleted-pipeline", ran(63, Push, m(-30), m(-20), "SUCCESS"))
			api.Fault(Fault{From: m(10), To: m(40), Unreachable: true})
			api.Fault(Fault{Pipeline: 6002, From: m(40), To: m(50), Status: 503, Code: "ServiceUnavailable", Message: "try later"})
			api.Fault(Fault{Pipeline: 6003, From: m(20), Status: 404, Code: "NotFound", Message: "pipeline not found"})
			a := r.Exporter(instA, spec(pipes("6001 backend-build", "6002 frontend-build", "6003 deleted-pipeline")))
			r.RunTo(20)
			a.MissScrape()
			r.RunTo(70)
		},
		Expect: []Case{
			quiet(14, apiDown),
			fires(16, apiDown, X(instA)),
			fires(20, apiDown, X(instA)).because("The failed scrape resolves nothing."),
			fires(39, apiDown, X(instA)),
			quiet(41, apiDown).because("Recovered."),
			quiet(30, fetchFailing),
			quiet(30, dataStale),
			quiet(45, fetchFailing),
			quiet(45, dataStale),
			quiet(53, fetchFailing),
			quiet(53, dataStale),
			fires(56, dataStale, deleted.V("47m 0s")).because("The hold-back is over (15m after the last yunxiao_up 0)."),
			quiet(63, fetchFailing),
			fires(66, fetchFailing, deleted),
		},
	}
}

func rateLimited() Scenario {
	frontend := P("7002", "frontend-build")
	return Scenario{
		Name: "token rate-limited",
		Doc: `The whole token is rate-limited from minute 10 to 39: every request is
answered 429 (with Retry-After: 0, see below), every pipeline's fetch fails
after its retries. YunxiaoApiRateLimited says it once (per job, not per
replica); FetchFailing and DataStale are held back meanwhile and while the
429 share over the last 15m stays high. 7001 is fetched again at minute
40; 7002 was deleted meanwhile (404) and alerts. The client's 429 pauses
run on the wall clock, which a recording on a fake clock cannot follow:
Retry-After: 0 keeps every fetch's requests the same (one try and its two
retries) whatever the wall clock does.`,
		Origin: hour,
		Script: func(r *Recorder) {
			api := r.API()
			api.Pipeline(7001, "backend-build", ran(71, Push, m(-30), m(-20), "SUCCESS"))
			api.Pipeline(7002, "frontend-build", ran(72, Push, m(-30), m(-20), "SUCCESS"))
			api.Fault(Fault{From: m(10), To: m(40), Status: 429, Code: "Throttling", Message: "Request was denied due to request throttling.", RetryAfter: "0"})
			api.Fault(Fault{Pipeline: 7002, From: m(40), Status: 404, Code: "NotFound", Message: "pipeline not found"})
			cfg := spec(pipes("7001 backend-build", "7002 frontend-build"))
			r.Exporter(instA, cfg)
			r.Exporter(instB, cfg)
			r.RunTo(90)
		},
		Expect: []Case{
			quiet(9, apiRateLimited),
			quiet(14, apiRateLimited).because("Pending from minute 10: the first 429s count at once (every endpoint's 429 series is exported from 0), then for: 5m. It fires at 15, with a share that still mixes in the requests before minute 10 (Prometheus 2 and 3 count the window's edge differently): checked at 25."),
			fires(25, apiRateLimited, Alert{Labels: map[string]string{"job": ExporterJob}, Value: "100%"}).because("Once, for the job: every request answered 429."),
			quiet(60, apiRateLimited),
			quiet(30, fetchFailing),
			quiet(30, dataStale),
			quiet(45, fetchFailing),
			quiet(45, dataStale),
			quiet(30, apiDown).because("429 is an answer: the API is up."),
			fires(65, dataStale, frontend.V("56m 0s")),
			fires(80, fetchFailing, frontend),
		},
	}
}

func failureRatioRollout() Scenario {
	return Scenario{
		Name: "FailureRatioHigh: 8 of 8 failed across a rollout",
		Doc: `run_history counters across a rollout: replica a counts 8001's first 4 runs
(all FAIL, ending at minutes 10, 20, 30 and 40) and leaves at minute 45;
the new pod b is scraped from minute 46, its counters born at 0, and
counts the next 4 (the one running when it starts included). Summed by
pipeline: 8 of 8, one alert (keyed by instance, each half had 4 < 5 runs
and nothing fired). 8002 has 2 FAIL of 8 across the same rollout: quiet.`,
		Origin: hour,
		Script: func(r *Recorder) {
			api := r.API()
			nightly := []*Run{ran(800, Scheduled, m(-30), m(-25), "SUCCESS")}
			build := []*Run{ran(900, Push, m(-30), m(-25), "SUCCESS")}
			for k := range 8 {
				start, end := m(5+10*k), m(10+10*k)
				nightly = append(nightly, ran(int64(801+k), Scheduled, start, end, "FAIL"))
				status := "SUCCESS"
				if k == 3 || k == 7 {
					status = "FAIL"
				}
				build = append(build, ran(int64(901+k), Push, start, end, status))
			}
			api.Pipeline(8001, "nightly-e2e", nightly...)
			api.Pipeline(8002, "backend-build", build...)
			cfg := spec("run_history: true\n" + pipes("8001 nightly-e2e", "8002 backend-build"))
			a := r.Exporter(instA, cfg)
			r.RunTo(45)
			a.Remove()
			r.RunTo(46)
			r.Exporter(instB, cfg)
			r.RunTo(91)
		},
		Expect: []Case{
			quiet(48, failureRatio).because("4 runs so far, all counted by a."),
			fires(66, failureRatio, P("8001", "nightly-e2e").V("100%")).because("The fifth and sixth runs, counted by b."),
			fires(90, failureRatio, P("8001", "nightly-e2e").V("100%")),
		},
	}
}

func failureRatioFirstFailures() Scenario {
	return Scenario{
		Name: "FailureRatioHigh: first failures after start-up",
		Doc: `The exporter starts at minute 0 and 8003's runs_total series are born at 0,
so the first FAIL after start-up is counted (born at 1, increase() would
see 3 of 4 FAIL and 4 runs, and stay quiet). Runs end at minutes 5, 15, 25
and 35 (FAIL, push) and 45 (SUCCESS, manual): 80% of 5.`,
		Origin: hour,
		Script: func(r *Recorder) {
			r.API().Pipeline(8003, "flaky-tests", ran(1, Push, 0, m(5), "FAIL"), ran(2, Push, m(10), m(15), "FAIL"),
				ran(3, Push, m(20), m(25), "FAIL"), ran(4, Push, m(30), m(35), "FAIL"), ran(5, Manual, m(40), m(45), "SUCCESS"))
			r.Exporter(instA, spec(pipes("8003 flaky-tests history")))
			r.RunTo(51)
		},
		Expect: []Case{
			quiet(40, failureRatio).because("4 runs so far, all FAIL: under 5."),
			fires(50, failureRatio, P("8003", "flaky-tests").V("80%")),
		},
	}
}

func failureRatioHAPair() Scenario {
	return Scenario{
		Name: "FailureRatioHigh: HA pair",
		Doc: `Two replicas both count the same runs: the counts double, the ratio does
not. 8004 failed 3 of 3 (6 of 6 counted): it fires (minRuns is reached with
half the runs: documented). 8005 failed 2 of 6 (4 of 12 counted): quiet.`,
		Origin: hour,
		Script: func(r *Recorder) {
			api := r.API()
			api.Pipeline(8004, "deploy-production", ran(1, Manual, m(5), m(10), "FAIL"), ran(2, Manual, m(15), m(20), "FAIL"), ran(3, Manual, m(25), m(30), "FAIL"))
			var runs []*Run
			for k, status := range []string{"SUCCESS", "FAIL", "SUCCESS", "FAIL", "SUCCESS", "SUCCESS"} {
				end := m(5 + 5*k)
				runs = append(runs, ran(int64(11+k), Push, end-m(3), end, status))
			}
			api.Pipeline(8005, "backend-build", runs...)
			cfg := spec("run_history: true\n" + pipes("8004 deploy-production", "8005 backend-build"))
			r.Exporter(instA, cfg)
			r.Exporter(instB, cfg)
			r.RunTo(40)
		},
		Expect: []Case{
			quiet(15, failureRatio).because("2 runs of 8004 so far, 4 counted."),
			fires(35, failureRatio, P("8004", "deploy-production").V("100%")),
		},
	}
}

func reshard() Scenario {
	dataSync := P("9002", "data-sync")
	shard := func(i, n int) collector.Shard { return collector.Shard{Index: i, Total: n} }
	return Scenario{
		Name: "reshard from 2 to 3 replicas",
		Doc: `A reshard from 2 to 3 replicas at minute 30: a (shard 0 of 2) and b (1 of 2)
restart as 0 of 3 and 1 of 3 (their scrapes fail at minute 30), and c (2
of 3) starts; all are scraped again from minute 31. 9002 data-sync, which
fails every run, moves from a to c (its FNV hash is 0 mod 2 and 2 mod 3);
9001 backend-build moves from b to a. c's counters are born at 0 and its
last finished run is seeded (run_history). One YunxiaoPipelineRunFailed
throughout, no staleness, and the failure ratio counts the runs of both:
3 + 3 FAIL.`,
		Origin: hour,
		Script: func(r *Recorder) {
			api := r.API()
			runs := []*Run{ran(100, Scheduled, m(-20), m(-15), "FAIL")}
			for k := range 6 {
				runs = append(runs, ran(int64(101+k), Scheduled, m(10*k), m(5+10*k), "FAIL"))
			}
			api.Pipeline(9002, "data-sync", runs...)
			api.Pipeline(9001, "backend-build", ran(200, Push, m(-20), m(-15), "SUCCESS"))
			cfg := "run_history: true\n" + pipes("9001 backend-build", "9002 data-sync")
			a := r.Exporter(instA, ExporterSpec{Config: cfg, Shard: shard(0, 2)})
			b := r.Exporter(instB, ExporterSpec{Config: cfg, Shard: shard(1, 2)})
			r.RunTo(30)
			a.Stop()
			b.Stop()
			r.RunTo(31)
			a.Restart(ExporterSpec{Config: cfg, Shard: shard(0, 3)})
			b.Restart(ExporterSpec{Config: cfg, Shard: shard(1, 3)})
			r.Exporter(instC, ExporterSpec{Config: cfg, Shard: shard(2, 3)})
			r.RunTo(60)
		},
		Expect: []Case{
			fires(29, runFailed, dataSync),
			fires(31, runFailed, dataSync),
			fires(45, runFailed, dataSync),
			quiet(31, dataStale),
			quiet(45, fetchFailing),
			quiet(40, failureRatio).because("4 runs: 3 counted by a, 1 by c."),
			fires(50, failureRatio, dataSync.V("100%")),
		},
	}
}
