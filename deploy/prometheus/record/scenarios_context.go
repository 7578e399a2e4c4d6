package main

import "fmt"

// Scenarios of the pipelines' context on the alerts (the labels of
// yunxiao_pipeline_info they carry) and of the webhook receiver.

// webhookConfig turns the webhook on (webhook.token), before pipelines:.
const webhookConfig = "webhook:\n  token: flow-hook-secret-2024\n"

func pipelineLabels() Scenario {
	build, web := P("1101", "backend-build"), P("1102", "frontend-build")
	return Scenario{
		Name: "pipeline labels: every alert carries its pipeline's team",
		Doc: `Per-pipeline alerts carry team and group of the pipeline's
yunxiao_pipeline_info (pipelines[].labels; group is empty here: the runs
have no Flow group, and an empty label is no label), so Alertmanager routes
them by team. An HA pair, a and b, both export 1101's info: one alert.
1101 (team payments) and 1102 (no labels) have failed since before the
start; 1103 is configured without a name and every request for it is
refused (403) from the start: its name is never known, so its info has
neither pipeline_name nor team, nor has its YunxiaoPipelineFetchFailing.
At minute 10 both replicas reload a config that
moves 1101 to team web: for the gap window (3m) the old info series still
counts, and the join picks one of the two (topk), never fails; from minute
13 the alert carries team web. A scrape of a fails at minute 20.`,
		Origin: hour,
		Script: func(r *Recorder) {
			api := r.API()
			api.Pipeline(1101, "backend-build", ran(101, Push, m(-30), m(-20), "FAIL"))
			api.Pipeline(1102, "frontend-build", ran(201, Push, m(-30), m(-25), "FAIL"))
			api.Pipeline(1103, "secret-project", ran(301, Push, m(-30), m(-25), "SUCCESS"))
			api.Fault(Fault{Pipeline: 1103, Status: 403, Code: "Forbidden", Message: "no permission on this pipeline"})
			nameless := "  - id: 1103\n"
			before := pipes("1101 backend-build team=payments", "1102 frontend-build") + nameless
			after := pipes("1101 backend-build team=web", "1102 frontend-build") + nameless
			a := r.Exporter(instA, spec(before))
			b := r.Exporter(instB, spec(before))
			r.RunTo(10)
			r.fail(a.Reload(after, false))
			r.fail(b.Reload(after, false))
			r.RunTo(20)
			a.MissScrape()
			r.RunTo(30)
		},
		Expect: []Case{
			fires(5, runFailed, build.Team("payments"), web).because("One alert for 1101 with its team, though two exporters export it; 1102 has no team."),
			fires(9, runFailed, build.Team("payments"), web),
			fires(11, runFailed, build.Team("payments"), web).because("Both info series of 1101 are in the gap window: one alert, no many-to-many error (topk keeps one: the first in label order)."),
			fires(13, runFailed, build.Team("web"), web).because("Reloaded at minute 10 with team web; the old info series has left the gap window."),
			fires(20, runFailed, build.Team("web"), web).because("The failed scrape of a changes nothing."),
			quiet(9, fetchFailing),
			fires(11, fetchFailing, Alert{Labels: map[string]string{"pipeline_id": "1103"}}).because("1103's name is unknown: the alert has its id alone."),
		},
	}
}

func webhookSilentStops() Scenario {
	return Scenario{
		Name: "WebhookSilent: events stop while runs go on",
		Doc: `YunxiaoWebhookSilent (6h). The webhook is on (webhook.token). 1201
backend-build starts a run every 30 minutes (run id 100, 101, ...) and runs
10 minutes; Flow's webhook plugin POSTs an event at each start and end.
From minute 100 its events carry an old token (answered 401, counted
unauthorized, never accepted): the last accepted event is at minute 90. The
exporter restarts in place at minute 150 (a new process: no last-accepted
time until its first event) and misses a scrape at minute 300. The token is
fixed at minute 520.`,
		Origin: hour,
		Script: func(r *Recorder) {
			var runs []*Run
			for k := range 19 {
				runs = append(runs, ran(int64(100+k), Push, m(30*k), m(30*k+10), "SUCCESS"))
			}
			r.API().Pipeline(1201, "backend-build", runs...)
			a := r.Exporter(instA, spec(webhookConfig+pipes("1201 backend-build team=payments")))
			for minute := 0; minute <= 540; minute += 10 {
				r.RunTo(minute)
				if minute%30 == 20 {
					continue // no run starts or ends
				}
				switch minute {
				case 150:
					a.Restart()
				case 300:
					a.MissScrape()
				}
				token, want := "flow-hook-secret-2024", 202
				if minute >= 100 && minute < 520 {
					token, want = "flow-hook-secret-2023", 401
				}
				if got := a.Webhook(1201, token); got != want {
					r.fail(fmt.Errorf("minute %d: the webhook answered %d, want %d", minute, got, want))
				}
			}
			r.RunTo(541)
		},
		Expect: []Case{
			quiet(60, webhookSilent),
			quiet(160, webhookSilent).because("Restarted at minute 150: the new process has accepted nothing yet; the old one's last event (minute 90) counts."),
			quiet(300, webhookSilent).because("The failed scrape changes nothing."),
			quiet(449, webhookSilent).because("The last event accepted, at minute 90, is 5h59m old."),
			fires(451, webhookSilent, J()),
			fires(500, webhookSilent, J()).because("Still from the series of the process replaced at minute 150."),
			fires(515, webhookSilent, J()).because("That series has left the 6h window; the new process has accepted nothing since it started 6h ago."),
			quiet(521, webhookSilent).because("Flow's token fixed: an event accepted at minute 520."),
		},
	}
}

func webhookSilentNoRuns() Scenario {
	return Scenario{
		Name: "WebhookSilent: quiet without runs, and once the webhook is off",
		Doc: `The webhook is on from the start and never receives an event. 1301
release-train last ran before the start and runs again at minute 400:
nothing to send until then, so no alert although the webhook has been
silent for 6h from minute 360. The run at minute 400 changes its run id:
the alert fires. At minute 420 a reload turns the webhook off (no token):
quiet.`,
		Origin: hour,
		Script: func(r *Recorder) {
			r.API().Pipeline(1301, "release-train", ran(500, Scheduled, m(-50), m(-40), "SUCCESS"), ran(501, Scheduled, m(400), m(410), "SUCCESS"))
			a := r.Exporter(instA, spec(webhookConfig+pipes("1301 release-train")))
			r.RunTo(420)
			r.fail(a.Reload(pipes("1301 release-train"), false))
			r.RunTo(431)
		},
		Expect: []Case{
			quiet(370, webhookSilent).because("Silent since the exporter started 6h10m ago, but no run started."),
			fires(401, webhookSilent, J()).because("1301's run id changed at minute 400."),
			quiet(420, webhookSilent).because("The webhook is off."),
		},
	}
}
