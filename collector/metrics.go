package collector

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// family indexes the per-pipeline metric families; the order is the order
// of metricDefs, which is also the order of the exposition.
type family int

const (
	famRunStatus family = iota
	famRunTriggerMode
	famRunID
	famRunStart
	famRunEnd
	famRunDuration
	famRunLastProgress
	famLastFinishedStatus
	famLastSuccessfulEnd
	famStageStatus
	famStageDuration
	famJobStatus
	famJobDuration
	famUp
	famLastSuccess
	famFetchErrors
	famRunsTotal
	famRunCompletedDuration
	famPipelineInfo
	famSourceInfo
	famRunQueued
	famRunWaiting
	famRunExecuting
	famRunQueuedDuration
	famRunExecutingDuration
	famRestoreDuration
	numFamilies
)

var (
	pipelineLabels = []string{"pipeline_id", "pipeline_name"}
	stageLabels    = []string{"pipeline_id", "pipeline_name", "stage_index", "stage_name"}
	jobLabels      = []string{"job_name", "job_sign", "pipeline_id", "pipeline_name", "stage_index", "stage_name"}
)

// MetricDef describes one metric the collector exports. The table below is
// the single source for Describe, the exposition and the README check.
type MetricDef struct {
	Name   string
	Help   string
	Type   dto.MetricType
	Labels []string // sorted, as they appear in the exposition
}

const cached = " Comes from GetLatestPipelineRun and may be up to cache_ttl old."

// metricDefs is indexed by family. It is never modified.
var metricDefs = [numFamilies]MetricDef{
	famRunStatus: {"yunxiao_pipeline_run_status",
		"Status of the pipeline's latest run: 1 for the status the API reports (any string it sends)." + cached,
		dto.MetricType_GAUGE, append(append([]string{}, pipelineLabels...), "status")},
	famRunTriggerMode: {"yunxiao_pipeline_run_trigger_mode",
		"How the latest run was triggered: 1 for manual, scheduled, push, pipeline, webhook, or the API's numeric code for any other." + cached,
		dto.MetricType_GAUGE, append(append([]string{}, pipelineLabels...), "trigger_mode")},
	famRunID: {"yunxiao_pipeline_run_id",
		"pipelineRunId of the latest run; it changes when a new run starts." + cached,
		dto.MetricType_GAUGE, pipelineLabels},
	famRunStart: {"yunxiao_pipeline_run_start_timestamp_seconds",
		"Unix time the latest run was created (createTime)." + cached,
		dto.MetricType_GAUGE, pipelineLabels},
	famRunEnd: {"yunxiao_pipeline_run_end_timestamp_seconds",
		"Unix time the latest run finished (updateTime of a finished run); absent while it runs." + cached,
		dto.MetricType_GAUGE, pipelineLabels},
	famRunDuration: {"yunxiao_pipeline_run_duration_seconds",
		"Duration of the latest run: end minus start when finished; while its status is active, now minus start (computed at scrape time), frozen at the last successful fetch while the pipeline's data is stale." + cached,
		dto.MetricType_GAUGE, pipelineLabels},
	famRunLastProgress: {"yunxiao_pipeline_run_last_progress_timestamp_seconds",
		"Unix time of the latest run's last progress: the latest start or end of any of its stages or jobs (createTime before any started). An approved gate ends a job, so approval counts as progress." + cached,
		dto.MetricType_GAUGE, pipelineLabels},
	famLastFinishedStatus: {"yunxiao_pipeline_last_finished_run_status",
		"Status of the pipeline's most recently finished run (by end time): 1 for its status, 0 for the other of SUCCESS, FAIL, CANCELED. It stays while newer runs are unfinished. Exact with run_history (ListPipelineRuns, seeded over the last 7 days at first sight); otherwise from the latest runs this process has fetched, and absent after a restart until one finishes." + cached,
		dto.MetricType_GAUGE, append(append([]string{}, pipelineLabels...), "status")},
	famLastSuccessfulEnd: {"yunxiao_pipeline_last_successful_run_end_timestamp_seconds",
		"Unix time the pipeline's most recent SUCCESS run ended; absent when unknown. Exact with run_history (ListPipelineRuns, seeded over the last 7 days at first sight); otherwise from the latest runs this process has fetched." + cached,
		dto.MetricType_GAUGE, pipelineLabels},
	famStageStatus: {"yunxiao_pipeline_stage_status",
		"Status of each stage of the latest run: 1 for the status the API reports." + cached,
		dto.MetricType_GAUGE, append(append([]string{}, stageLabels...), "status")},
	famStageDuration: {"yunxiao_pipeline_stage_duration_seconds",
		"Duration of each started stage of the latest run: end minus start, or while its status is active now minus start (frozen at the last successful fetch while the data is stale)." + cached,
		dto.MetricType_GAUGE, stageLabels},
	famJobStatus: {"yunxiao_pipeline_job_status",
		"Status of each job of the latest run: 1 for the status the API reports." + cached,
		dto.MetricType_GAUGE, append(append([]string{}, jobLabels...), "status")},
	famJobDuration: {"yunxiao_pipeline_job_duration_seconds",
		"Duration of each started job of the latest run: end minus start, or while its status is active now minus start (frozen at the last successful fetch while the data is stale)." + cached,
		dto.MetricType_GAUGE, jobLabels},
	famUp: {"yunxiao_pipeline_up",
		"1 when the pipeline's last fetch from the Flow API succeeded (data fetched or cached within cache_ttl), 0 when it failed; the last good run data stays exported.",
		dto.MetricType_GAUGE, pipelineLabels},
	famLastSuccess: {"yunxiao_pipeline_last_fetch_success_timestamp_seconds",
		"Unix time the exported run data was last fetched successfully from the Flow API (about fetching, not about runs: see yunxiao_pipeline_last_successful_run_end_timestamp_seconds).",
		dto.MetricType_GAUGE, pipelineLabels},
	famFetchErrors: {"yunxiao_pipeline_fetch_errors_total",
		"Failed fetches of the pipeline's data from the Flow API since the exporter started, by cause; every cause is exported from 0 from the moment the pipeline is watched.",
		dto.MetricType_COUNTER, append(append([]string{}, pipelineLabels...), "reason")},
	famRunsTotal: {"yunxiao_pipeline_runs_total",
		"Finished runs of the pipeline, each counted once, by final status and trigger mode, from ListPipelineRuns since the exporter first saw the pipeline (run_history only). SUCCESS, FAIL and CANCELED by each documented trigger mode are exported from 0; other values from their first run.",
		dto.MetricType_COUNTER, append(append([]string{}, pipelineLabels...), "status", "trigger_mode")},
	famRunCompletedDuration: {"yunxiao_pipeline_run_completed_duration_seconds",
		"Durations of the pipeline's finished runs (end minus start), each observed once, from ListPipelineRuns since the exporter first saw the pipeline (run_history only).",
		dto.MetricType_HISTOGRAM, pipelineLabels},
	famPipelineInfo: {"yunxiao_pipeline_info",
		"1 for every watched pipeline, with its context: group (the latest run's groups, comma-joined), tags (GetPipeline's tagList, refreshed with the name every hour), deploy (true for pipelines marked as deployments) and the extra labels the config gives it (pipelines[].labels, discovery.labels). Join on pipeline_id to carry them to other series.",
		dto.MetricType_GAUGE, []string{"deploy", "group", "pipeline_id", "pipeline_name", "tags"}},
	famSourceInfo: {"yunxiao_pipeline_run_source_info",
		"1 for each code source of the latest run: its name, type, repository (without credentials, query or fragment), branch and commit (empty when the API gives none)." + cached,
		dto.MetricType_GAUGE, []string{"branch", "commit", "pipeline_id", "pipeline_name", "repo", "source_name", "source_type"}},
	famRunQueued: {"yunxiao_pipeline_run_queued_seconds",
		"Time the latest run waited before its first job started: createTime to the first job's start, or now minus createTime while none has started (frozen while the data is stale)." + cached,
		dto.MetricType_GAUGE, pipelineLabels},
	famRunWaiting: {"yunxiao_pipeline_run_waiting_seconds",
		"Time the latest run's jobs spent WAITING (manual gates, approvals): the union of the intervals of jobs that are WAITING (until now), offer approval actions, or were seen WAITING by this exporter (best effort across its restarts)." + cached,
		dto.MetricType_GAUGE, pipelineLabels},
	famRunExecuting: {"yunxiao_pipeline_run_executing_seconds",
		"Time the latest run spent executing: its duration minus queued and waiting time; it grows only while the run is neither queued nor waiting." + cached,
		dto.MetricType_GAUGE, pipelineLabels},
	famRunQueuedDuration: {"yunxiao_pipeline_run_queued_duration_seconds",
		"Queued time (createTime to the first job's start) of the pipeline's finished runs, each observed once, read with one GetPipelineRun per finished run (run_history only; at most 30 runs per refresh are read, so its count can trail runs_total).",
		dto.MetricType_HISTOGRAM, pipelineLabels},
	famRunExecutingDuration: {"yunxiao_pipeline_run_executing_duration_seconds",
		"Executing time (duration minus queued and approval-gate time) of the pipeline's finished runs, each observed once, read like yunxiao_pipeline_run_queued_duration_seconds (run_history only).",
		dto.MetricType_HISTOGRAM, pipelineLabels},
	famRestoreDuration: {"yunxiao_pipeline_restore_duration_seconds",
		"Time to restore: from the end of the first FAIL run after a SUCCESS to the end of the next SUCCESS run, each recovery observed once, from ListPipelineRuns (run_history only; the red spell in progress at first sight is learnt from the last 7 days of runs). Buckets from 5 minutes to a week.",
		dto.MetricType_HISTOGRAM, pipelineLabels},
}

// Scrape-level metrics, built per scrape.
var scrapeDurationDef = MetricDef{"yunxiao_scrape_duration_seconds",
	"Time this scrape spent refreshing stale pipelines and building their metrics.",
	dto.MetricType_GAUGE, nil}

// Definitions returns every metric the collector itself exports, for
// documentation and its tests.
func Definitions() []MetricDef {
	defs := append([]MetricDef{}, metricDefs[:]...)
	return append(defs, scrapeDurationDef)
}

func newDesc(d MetricDef) *prometheus.Desc {
	return prometheus.NewDesc(d.Name, d.Help, d.Labels, nil)
}
