package collector

import (
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/yunxiao-exporter/yunxiao_exporter/yunxiao"
)

// built is everything exported about one pipeline as client_golang's
// data model: what Collect serves, and what a snapshot is rendered from.
type built struct {
	families [numFamilies][]*dto.Metric // sorted; dynamic entries are placeholders
	dynamic  []dynamicMetric            // durations that grow with the clock
	status   PipelineStatus             // for the landing page
	dropped  int                        // series dropped as duplicates
	// frozenAt, when set, is the clock (Unix ms) for the dynamic metrics:
	// while a pipeline's fetch fails, its last good data describes the
	// moment it was fetched, so active durations stop growing there rather
	// than making a healthy run look stuck through an API outage.
	frozenAt int64
}

// dynamicMetric is a value that moves with the clock: offset plus now
// minus start, computed per scrape, never below 0 (a duration of something
// still running has offset 0).
type dynamicMetric struct {
	family family
	index  int
	labels []*dto.LabelPair
	moving
}

// moving is offset + (now − start), never below 0: a value that moves with
// the clock. static marks one that does not, for addMoving.
type moving struct {
	static bool
	fixed  float64 // when static
	start  int64   // Unix ms
	offset float64 // seconds
}

func (m moving) value(now int64) float64 {
	return max(m.offset+float64(now-m.start)/1000, 0)
}

// clockAt is the clock a snapshot's moving values are read at: now, or the
// last good fetch while the data is stale (frozenAt set).
func clockAt(now, frozenAt int64) int64 {
	if frozenAt > 0 {
		return min(now, frozenAt)
	}
	return now
}

// PipelineStatus is what the landing page shows of a pipeline.
type PipelineStatus struct {
	ID          int64
	Name        string
	Up          bool
	HasRun      bool
	RunID       int64
	Status      string
	TriggerMode string
	Start       time.Time // zero when unknown
	End         time.Time // zero while running or unknown
	LastSuccess time.Time // zero when never fetched
	LastError   string    // empty when the last fetch succeeded
	running     bool
	frozen      time.Time // the clock stops here while the data is stale
}

// Duration returns the run's duration at now, and false when unknown.
func (s PipelineStatus) Duration(now time.Time) (time.Duration, bool) {
	if !s.frozen.IsZero() && s.frozen.Before(now) {
		now = s.frozen
	}
	switch {
	case s.Start.IsZero():
		return 0, false
	case !s.End.IsZero():
		return s.End.Sub(s.Start), true
	case s.running:
		return max(now.Sub(s.Start), 0), true
	}
	return 0, false
}

// Statuses known to mean "not finished yet": their durations grow with the
// clock. Known final statuses have end times. Anything else is exported as
// a status, but gets a duration only if it has an end time.
var activeStatuses = map[string]bool{
	"RUNNING": true, "WAITING": true, "CANCELLING": true, "QUEUED": true, "QUEUEING": true,
	"PENDING": true, "INIT": true, "READY": true,
}

var finalStatuses = map[string]bool{
	"SUCCESS": true, "FAIL": true, "FAILED": true, "CANCELED": true, "CANCELLED": true,
	"FINISH": true, "FINISHED": true, "SKIP": true, "SKIPPED": true,
}

func isActive(status string) bool { return activeStatuses[strings.ToUpper(status)] }
func isFinal(status string) bool  { return finalStatuses[strings.ToUpper(status)] }

// fetchState is what a snapshot is built from.
type fetchState struct {
	id          int64
	name        string
	run         *yunxiao.PipelineRun // last good run; nil when none
	fetched     bool                 // false until the first fetch ends: up is unknown
	up          bool
	lastSuccess time.Time
	lastError   string
	errors      []uint64     // by the index of yunxiao.Reasons
	history     *historyView // nil unless run history is on and started
	lastDone    finishedRun  // the most recently finished run known
	lastGreen   finishedRun  // the most recently finished SUCCESS run known
	meta        pipelineMeta
	waited      map[yunxiao.ID]bool // jobs of the latest run seen WAITING
}

// pipelineMeta is a pipeline's context for yunxiao_pipeline_info.
type pipelineMeta struct {
	labels map[string]string // extra labels from the config
	deploy bool
	tags   []string // from GetPipeline
}

// finishedRun is a finished run the exporter knows of; the zero value is
// none.
type finishedRun struct {
	id     yunxiao.ID
	status string
	end    yunxiao.Millis
}

func (f finishedRun) known() bool { return f.id != 0 }

// after reports whether f finished after g (run ids break ties).
func (f finishedRun) after(g finishedRun) bool {
	return f.end > g.end || f.end == g.end && f.id > g.id
}

// finishedStates are exported as 0 beside the last finished run's status,
// so that the state set keeps its series when the status changes.
var finishedStates = []string{"CANCELED", "FAIL", "SUCCESS"}

// historyView is a copy of a pipeline's run history for one snapshot.
type historyView struct {
	runs                            map[runKey]uint64
	keys                            []runKey
	duration, queued, exec, restore histo
}

func (h *history) view() *historyView {
	if h == nil || !h.started {
		return nil
	}
	v := &historyView{runs: make(map[runKey]uint64, len(h.runs)), keys: h.keys(),
		duration: h.duration.clone(), queued: h.queued.clone(), exec: h.exec.clone(), restore: h.restore.clone()}
	for k, n := range h.runs {
		v.runs[k] = n
	}
	return v
}

// builder accumulates one pipeline's metrics.
type builder struct {
	snap *built
	seen map[string]bool // family + label values, to drop duplicates
	key  []byte          // scratch for seen's keys
}

func label(name, value string) *dto.LabelPair {
	return &dto.LabelPair{Name: proto.String(name), Value: proto.String(value)}
}

func (b *builder) add(f family, labels []*dto.LabelPair, value float64) {
	if b.duplicate(f, labels) {
		return
	}
	m := &dto.Metric{Label: labels}
	if metricDefs[f].Type == dto.MetricType_COUNTER {
		m.Counter = &dto.Counter{Value: proto.Float64(value)}
	} else {
		m.Gauge = &dto.Gauge{Value: proto.Float64(value)}
	}
	b.snap.families[f] = append(b.snap.families[f], m)
}

func (b *builder) addDynamic(f family, labels []*dto.LabelPair, start int64) {
	b.addMoving(f, labels, moving{start: start})
}

func (b *builder) addMoving(f family, labels []*dto.LabelPair, v moving) {
	if v.static {
		b.add(f, labels, max(v.fixed, 0))
		return
	}
	if b.duplicate(f, labels) {
		return
	}
	m := &dto.Metric{Label: labels}
	b.snap.families[f] = append(b.snap.families[f], m)
	b.snap.dynamic = append(b.snap.dynamic, dynamicMetric{family: f, labels: labels, moving: v})
}

func (b *builder) addHistogram(f family, labels []*dto.LabelPair, h histo) {
	hist := &dto.Histogram{SampleCount: proto.Uint64(h.count), SampleSum: proto.Float64(h.sum)}
	for i, bound := range h.bounds {
		hist.Bucket = append(hist.Bucket, &dto.Bucket{UpperBound: proto.Float64(bound), CumulativeCount: proto.Uint64(h.buckets[i])})
	}
	b.snap.families[f] = append(b.snap.families[f], &dto.Metric{Label: labels, Histogram: hist})
}

// duplicate reports (and counts) a label set already added to family f.
// Two jobs with one sign and name in one stage must not break the scrape.
func (b *builder) duplicate(f family, labels []*dto.LabelPair) bool {
	b.key = strconv.AppendInt(b.key[:0], int64(f), 10)
	for _, l := range labels {
		b.key = append(b.key, 0)
		b.key = append(b.key, l.GetValue()...)
	}
	if b.seen[string(b.key)] { // no allocation to look up
		b.snap.dropped++
		return true
	}
	b.seen[string(b.key)] = true
	return false
}

// addDuration exports a duration for something with the given status and
// times: end − start when it ended, now − start (per scrape) while it is
// active, nothing when it has not started or its end is unknowable.
func (b *builder) addDuration(f family, labels []*dto.LabelPair, status string, start, end yunxiao.Millis) {
	switch {
	case !start.IsSet():
	case isActive(status):
		// The status decides: the API has been seen to send an end time
		// on work that is still running.
		b.addDynamic(f, labels, int64(start))
	case end.IsSet():
		if end >= start {
			b.add(f, labels, (end - start).Seconds())
		}
	}
}

// build makes the data-model form of a pipeline's metrics.
func build(st fetchState) *built {
	b := &builder{snap: &built{}, seen: map[string]bool{}}
	id := strconv.FormatInt(st.id, 10)
	base := []*dto.LabelPair{label("pipeline_id", id), label("pipeline_name", st.name)}
	with := func(extra ...*dto.LabelPair) []*dto.LabelPair {
		return append(append(make([]*dto.LabelPair, 0, len(base)+len(extra)), base...), extra...)
	}
	status := PipelineStatus{ID: st.id, Name: st.name, Up: st.up, LastSuccess: st.lastSuccess, LastError: st.lastError}

	if run := st.run; run != nil {
		status.HasRun, status.RunID, status.Status = true, int64(run.PipelineRunID), run.Status
		if run.Status != "" {
			b.add(famRunStatus, with(label("status", run.Status)), 1)
		}
		if mode, ok := yunxiao.TriggerModeName(run.TriggerMode); ok {
			status.TriggerMode = mode
			b.add(famRunTriggerMode, with(label("trigger_mode", mode)), 1)
		}
		b.add(famRunID, base, float64(run.PipelineRunID))
		if run.CreateTime.IsSet() {
			status.Start = run.CreateTime.Time()
			b.add(famRunStart, base, run.CreateTime.Seconds())
		}
		end := runEnd(run)
		if end.IsSet() && end >= run.CreateTime {
			status.End = end.Time()
			b.add(famRunEnd, base, end.Seconds())
		} else {
			end = 0
		}
		status.running = isActive(run.Status)
		b.addDuration(famRunDuration, base, run.Status, run.CreateTime, end)
		if progress := lastProgress(run); progress.IsSet() {
			b.add(famRunLastProgress, base, progress.Seconds())
		}
		if ph, ok := runPhases(run, st.waited); ok {
			b.addMoving(famRunQueued, base, ph.queued)
			b.addMoving(famRunWaiting, base, ph.waiting)
			b.addMoving(famRunExecuting, base, ph.executing)
		}
		for _, src := range run.Sources {
			b.add(famSourceInfo, sortedLabels(base,
				label("source_name", cleanValue(src.Name)), label("source_type", cleanValue(src.Type)),
				label("repo", cleanValue(sanitizeRepo(src.Repo))), label("branch", cleanValue(src.Branch)),
				label("commit", cleanValue(src.Commit))), 1)
		}

		for _, stage := range run.Stages {
			info := stage.StageInfo
			if info == nil {
				continue // the API says nothing about this stage yet
			}
			stageName := stage.Name
			if stageName == "" {
				stageName = info.Name
			}
			sl := []*dto.LabelPair{label("stage_index", stage.Index), label("stage_name", stageName)}
			if info.Status != "" {
				b.add(famStageStatus, with(append(sl, label("status", info.Status))...), 1)
			}
			b.addDuration(famStageDuration, with(sl...), info.Status, info.StartTime, info.EndTime)
			for _, job := range info.Jobs {
				jl := []*dto.LabelPair{label("job_name", job.Name), label("job_sign", job.JobSign)}
				labels := append(append(jl, base...), sl...)
				if job.Status != "" {
					b.add(famJobStatus, append(labels[:len(labels):len(labels)], label("status", job.Status)), 1)
				}
				b.addDuration(famJobDuration, labels, job.Status, job.StartTime, job.EndTime)
			}
		}
	}

	if st.fetched {
		b.add(famUp, base, boolFloat(st.up))
	}
	if st.name != "" { // its context is about a pipeline one can name
		b.add(famPipelineInfo, infoLabels(base, st), 1)
	}
	if !st.lastSuccess.IsZero() {
		b.add(famLastSuccess, base, float64(st.lastSuccess.UnixMilli())/1000)
	}
	if d := st.lastDone; d.known() {
		for _, s := range finishedStates {
			b.add(famLastFinishedStatus, with(label("status", s)), boolFloat(s == d.status))
		}
		if d.status != "" && !slices.Contains(finishedStates, d.status) {
			b.add(famLastFinishedStatus, with(label("status", d.status)), 1)
		}
	}
	if g := st.lastGreen; g.known() && g.end.IsSet() {
		b.add(famLastSuccessfulEnd, base, g.end.Seconds())
	}
	// Every cause from 0, so that increase() sees its first error.
	for i, reason := range yunxiao.Reasons {
		var n uint64
		if i < len(st.errors) {
			n = st.errors[i]
		}
		b.add(famFetchErrors, with(label("reason", string(reason))), float64(n))
	}
	if h := st.history; h != nil {
		for _, k := range h.keys {
			b.add(famRunsTotal, with(label("status", k.status), label("trigger_mode", k.triggerMode)), float64(h.runs[k]))
		}
		b.addHistogram(famRunCompletedDuration, base, h.duration)
		b.addHistogram(famRunQueuedDuration, base, h.queued)
		b.addHistogram(famRunExecutingDuration, base, h.exec)
		b.addHistogram(famRestoreDuration, base, h.restore)
	}

	for f := range b.snap.families {
		sortMetrics(b.snap.families[f])
	}
	// Placeholders moved while sorting: find each dynamic metric's index.
	for i := range b.snap.dynamic {
		d := &b.snap.dynamic[i]
		for j, m := range b.snap.families[d.family] {
			if m.Gauge == nil && m.Counter == nil && m.Histogram == nil && sameLabels(m.Label, d.labels) {
				d.index = j
				break
			}
		}
	}
	if !st.up && !st.lastSuccess.IsZero() {
		b.snap.frozenAt = st.lastSuccess.UnixMilli()
		status.frozen = st.lastSuccess
	}
	b.snap.status = status
	return b.snap
}

// lastProgress is the latest start or end of any stage or job of run, or
// its createTime when none has started.
func lastProgress(run *yunxiao.PipelineRun) yunxiao.Millis {
	progress := run.CreateTime
	for _, s := range run.Stages {
		if s.StageInfo == nil {
			continue
		}
		progress = max(progress, s.StageInfo.StartTime, s.StageInfo.EndTime)
		for _, j := range s.StageInfo.Jobs {
			progress = max(progress, j.StartTime, j.EndTime)
		}
	}
	return progress
}

// runEnd is when a finished run ended. The run object has no end time of
// its own: updateTime is its last change, which for a finished run is its
// end; failing that, the latest end of its stages.
func runEnd(run *yunxiao.PipelineRun) yunxiao.Millis {
	if !isFinal(run.Status) {
		return 0
	}
	if run.UpdateTime.IsSet() {
		return run.UpdateTime
	}
	var end yunxiao.Millis
	for _, s := range run.Stages {
		if s.StageInfo != nil {
			end = max(end, s.StageInfo.EndTime)
		}
	}
	return end
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// sortMetrics orders metrics as client_golang's registry does: by label
// values, in the order of the (sorted) label names.
func sortMetrics(ms []*dto.Metric) {
	sort.SliceStable(ms, func(i, j int) bool {
		a, b := ms[i].Label, ms[j].Label
		for k := range a {
			if k >= len(b) {
				return false
			}
			if av, bv := a[k].GetValue(), b[k].GetValue(); av != bv {
				return av < bv
			}
		}
		return len(a) < len(b)
	})
}

func sameLabels(a, b []*dto.LabelPair) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].GetValue() != b[i].GetValue() || a[i].GetName() != b[i].GetName() {
			return false
		}
	}
	return true
}

// appendFamily appends family f of the snapshot to dst, with durations of
// unfinished things computed for now (Unix milliseconds). The static metrics
// are shared, never copied or modified.
func (s *built) appendFamily(dst []*dto.Metric, f family, now int64) []*dto.Metric {
	now = clockAt(now, s.frozenAt)
	offset := len(dst)
	dst = append(dst, s.families[f]...)
	for _, d := range s.dynamic {
		if d.family == f {
			dst[offset+d.index] = &dto.Metric{Label: d.labels, Gauge: &dto.Gauge{Value: proto.Float64(d.value(now))}}
		}
	}
	return dst
}

// infoLabels are yunxiao_pipeline_info's labels for a pipeline, sorted.
func infoLabels(base []*dto.LabelPair, st fetchState) []*dto.LabelPair {
	var groups []string
	if st.run != nil {
		for _, g := range st.run.Groups {
			groups = append(groups, g.Name)
		}
	}
	extra := []*dto.LabelPair{
		label("group", cleanValue(joinSorted(groups))),
		label("tags", cleanValue(joinSorted(st.meta.tags))),
		label("deploy", strconv.FormatBool(st.meta.deploy)),
	}
	for name, value := range st.meta.labels {
		extra = append(extra, label(name, value))
	}
	return sortedLabels(base, extra...)
}

// sortedLabels is base plus extra, sorted by name as the exposition wants.
func sortedLabels(base []*dto.LabelPair, extra ...*dto.LabelPair) []*dto.LabelPair {
	out := append(append(make([]*dto.LabelPair, 0, len(base)+len(extra)), base...), extra...)
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

func joinSorted(items []string) string {
	items = slices.Clone(items)
	slices.Sort(items)
	return strings.Join(slices.Compact(items), ",")
}

// maxLabelValue bounds a label value taken from the API: a hostile branch
// name or tag list must not grow the exposition without bound.
const maxLabelValue = 256

// cleanValue makes an API string a label value: valid UTF-8, at most
// maxLabelValue bytes, cut at a character boundary.
func cleanValue(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxLabelValue {
		return s
	}
	cut := maxLabelValue
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// sanitizeRepo drops what a repository address may carry besides the
// repository: user and password, query (tokens are passed so) and fragment.
func sanitizeRepo(repo string) string {
	if u, err := url.Parse(repo); err == nil && u.Scheme != "" && u.Host != "" {
		u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
		return u.String()
	}
	// scp-like user@host:path: what precedes @ may be a credential.
	if at := strings.LastIndex(repo, "@"); at >= 0 && !strings.Contains(repo[:at], "/") {
		return repo[at+1:]
	}
	return repo
}

// phases is where the latest run's time went.
type phases struct{ queued, waiting, executing moving }

// runPhases splits a run's time into queued (before its first job
// started), waiting (jobs at a manual gate) and executing (the rest). A
// finished run is evaluated at its end, so all three are static; while it
// runs, exactly the active phase moves with the clock.
func runPhases(run *yunxiao.PipelineRun, waited map[yunxiao.ID]bool) (phases, bool) {
	create := run.CreateTime
	if !create.IsSet() {
		return phases{}, false
	}
	active := isActive(run.Status)
	end := runEnd(run)
	if !active && (!end.IsSet() || end < create) {
		return phases{}, false // finished, but when is unknown
	}
	var firstJob yunxiao.Millis
	var closed [][2]yunxiao.Millis
	var openFrom yunxiao.Millis // earliest start of a job WAITING now
	for _, s := range run.Stages {
		if s.StageInfo == nil {
			continue
		}
		for _, j := range s.StageInfo.Jobs {
			if !j.StartTime.IsSet() {
				continue
			}
			if !firstJob.IsSet() || j.StartTime < firstJob {
				firstJob = j.StartTime
			}
			switch {
			case strings.EqualFold(j.Status, "WAITING"):
				if !openFrom.IsSet() || j.StartTime < openFrom {
					openFrom = j.StartTime
				}
			case (bool(j.Gate) || waited[j.ID]) && j.EndTime.IsSet() && j.EndTime >= j.StartTime:
				closed = append(closed, [2]yunxiao.Millis{j.StartTime, j.EndTime})
			}
		}
	}
	if !active {
		// Evaluated at the end: nothing moves; a job still WAITING on a
		// finished run waited until the run ended.
		if openFrom.IsSet() {
			closed = append(closed, [2]yunxiao.Millis{openFrom, max(end, openFrom)})
			openFrom = 0
		}
		total := (end - create).Seconds()
		var queued float64
		if firstJob.IsSet() {
			queued = (max(firstJob, create) - create).Seconds()
		} else {
			queued = total
		}
		waiting := unionSeconds(closed, 0)
		return phases{
			queued:    moving{static: true, fixed: queued},
			waiting:   moving{static: true, fixed: waiting},
			executing: moving{static: true, fixed: total - queued - waiting},
		}, true
	}
	if !firstJob.IsSet() {
		// Still queued: only that phase moves.
		return phases{
			queued:    moving{start: int64(create)},
			waiting:   moving{static: true},
			executing: moving{static: true},
		}, true
	}
	queued := (max(firstJob, create) - create).Seconds()
	if openFrom.IsSet() {
		// Waiting now: waiting moves; executing stopped when it began.
		before := unionSeconds(closed, openFrom)
		return phases{
			queued:    moving{static: true, fixed: queued},
			waiting:   moving{start: int64(openFrom), offset: before},
			executing: moving{static: true, fixed: (openFrom - create).Seconds() - queued - before},
		}, true
	}
	waiting := unionSeconds(closed, 0)
	return phases{
		queued:    moving{static: true, fixed: queued},
		waiting:   moving{static: true, fixed: waiting},
		executing: moving{start: int64(create), offset: -queued - waiting},
	}, true
}

// unionSeconds is the length of the union of intervals, counting only
// what lies before limit when limit is set.
func unionSeconds(intervals [][2]yunxiao.Millis, limit yunxiao.Millis) float64 {
	var clipped [][2]yunxiao.Millis
	for _, iv := range intervals {
		if limit.IsSet() {
			iv[1] = min(iv[1], limit)
		}
		if iv[1] > iv[0] {
			clipped = append(clipped, iv)
		}
	}
	sort.Slice(clipped, func(i, j int) bool { return clipped[i][0] < clipped[j][0] })
	var total, curStart, curEnd yunxiao.Millis
	for i, iv := range clipped {
		if i == 0 || iv[0] > curEnd {
			total += curEnd - curStart
			curStart, curEnd = iv[0], iv[1]
		} else {
			curEnd = max(curEnd, iv[1])
		}
	}
	total += curEnd - curStart
	return total.Seconds()
}
