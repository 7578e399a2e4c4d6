package e2e

import (
	"testing"
	"time"

	"github.com/yunxiao-exporter/yunxiao_exporter/deploy/mixin"
)

// scale shortens every duration of the rules: one hour of rule time is one
// minute of test time (2h stuck -> 2m, 10m for -> 10s).
const scale = 1.0 / 60

// scenarioGapWindow replaces the scaled GapWindow (3m -> 3 s). What the
// window must outlast is not scaled: the scrape and evaluation intervals
// (1 s each; the mixin wants the window longer than two scrapes plus an
// evaluation, 3 s), Prometheus' service discovery, which applies a target
// change up to 5 s late, and the client's retry backoff before a restarted
// exporter first reports a failing pipeline (about 2 s). Measured in the
// scenarios (they log it): a restart on a new address leaves no sample for
// 1 to 10 s, two missed scrapes for 3 to 6 s. In production 3m covers a pod
// restart with room, as 15 s does here.
const scenarioGapWindow = 15 * time.Second

// Alert names.
const (
	alertRunFailed       = "YunxiaoPipelineRunFailed"
	alertRunStuck        = "YunxiaoPipelineRunStuck"
	alertWaitingTooLong  = "YunxiaoPipelineWaitingTooLong"
	alertFetchFailing    = "YunxiaoPipelineFetchFailing"
	alertDataStale       = "YunxiaoPipelineDataStale"
	alertFailureRatio    = "YunxiaoPipelineFailureRatioHigh"
	alertAPIDown         = "YunxiaoApiDown"
	alertExporterDown    = "YunxiaoExporterDown"
	alertNoRecentSuccess = "YunxiaoPipelineNoRecentSuccess"
)

// ruleSet is the rule file the scenarios load and the durations in it.
type ruleSet struct {
	file   []byte
	job    string // the scrape job the rules select
	source string
	timing timing
}

// timing holds the rules' durations after scaling, as the scenarios need
// them to know how long to wait or to watch.
type timing struct {
	apiDownFor      time.Duration
	fetchFailingFor time.Duration
	staleAfter      time.Duration
	holdback        time.Duration // per-pipeline fetch alerts held back this long after an outage
	stuckAfter      time.Duration
	stuckFor        time.Duration
	waitingFor      time.Duration
	runFailedFor    time.Duration
	keepFiring      time.Duration // the longest keep_firing_for of a per-pipeline alert
	gap             time.Duration // how long a value is carried across missed scrapes
	ratioWindow     time.Duration
	ratioFor        time.Duration
	exporterDownFor time.Duration
}

// scenarioRules renders the shipped rules from deploy/mixin's Default(),
// every duration scaled by the generator (never edited by hand), with the
// job name the selector names.
func scenarioRules(t *testing.T) ruleSet {
	t.Helper()
	c := mixin.Default().Scale(scale)
	c.GapWindow = mixin.Duration(scenarioGapWindow)
	if err := c.Validate(); err != nil {
		t.Fatalf("scaled mixin config: %v", err)
	}
	file, err := mixin.Rules(c)
	if err != nil {
		t.Fatalf("mixin.Rules: %v", err)
	}
	matchers, err := mixin.ParseSelector(c.Selector)
	if err != nil {
		t.Fatal(err)
	}
	job := ""
	for _, m := range matchers {
		if m.Name == "job" && m.Op == "=" {
			job = m.Value
		}
	}
	if job == "" || !mixin.MatchesLabels(matchers, map[string]string{"job": job}) {
		t.Fatalf("the mixin's default selector %s names no single job to scrape under", c.Selector)
	}
	d := func(v mixin.Duration) time.Duration { return time.Duration(v) }
	keep := maxDur(d(c.PipelineRunFailed.KeepFiringFor), d(c.PipelineFetchFailing.KeepFiringFor), d(c.PipelineRunStuck.KeepFiringFor),
		d(c.PipelineWaitingTooLong.KeepFiringFor), d(c.PipelineDataStale.KeepFiringFor), d(c.PipelineFailureRatioHigh.KeepFiringFor))
	return ruleSet{
		file:   file,
		job:    job,
		source: "deploy/mixin Rules(Default().Scale(1/60)), GapWindow " + scenarioGapWindow.String(),
		timing: timing{
			apiDownFor:      d(c.APIDown.For),
			fetchFailingFor: d(c.PipelineFetchFailing.For),
			staleAfter:      d(c.PipelineDataStale.Threshold),
			holdback:        d(c.FetchHoldback),
			stuckAfter:      d(c.PipelineRunStuck.Threshold),
			stuckFor:        d(c.PipelineRunStuck.For),
			waitingFor:      d(c.PipelineWaitingTooLong.For),
			runFailedFor:    d(c.PipelineRunFailed.For),
			keepFiring:      keep,
			gap:             d(c.GapWindow),
			ratioWindow:     d(c.PipelineFailureRatioHigh.Window),
			ratioFor:        d(c.PipelineFailureRatioHigh.For),
			exporterDownFor: d(c.ExporterDown.For),
		},
	}
}

// mixinJob is the scrape job the shipped rules select (the mixin's default
// selector), so that the end-to-end test scrapes under it.
func mixinJob(t *testing.T) string {
	t.Helper()
	matchers, err := mixin.ParseSelector(mixin.Default().Selector)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range matchers {
		if m.Name == "job" && m.Op == "=" && mixin.MatchesLabels(matchers, map[string]string{"job": m.Value}) {
			return m.Value
		}
	}
	t.Fatalf("the mixin's default selector %s names no single job to scrape under", mixin.Default().Selector)
	return ""
}
