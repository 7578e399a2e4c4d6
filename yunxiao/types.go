// Package yunxiao is a client for the parts of the Alibaba Cloud DevOps
// (Yunxiao) Flow OpenAPI that the exporter reads: the latest run of a
// pipeline, a given run, the pipeline itself, and the lists of pipelines
// and runs, for both editions of the service.
package yunxiao

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Millis is an epoch-milliseconds time as the Flow API sends it. Zero means
// "not set" (not started, not ended); it is never turned into a 1970 date.
// The API is documented to send numbers; a numeric string or null is
// accepted too, since gateways and older editions have been seen to differ.
type Millis int64

// IsSet reports whether the time was sent and is after the epoch.
func (m Millis) IsSet() bool { return m > 0 }

// Seconds returns the time as fractional Unix seconds.
func (m Millis) Seconds() float64 { return float64(m) / 1000 }

// Time returns the time as a time.Time; only meaningful when IsSet.
func (m Millis) Time() time.Time { return time.UnixMilli(int64(m)) }

// UnmarshalJSON accepts a number, a numeric string, or null.
func (m *Millis) UnmarshalJSON(b []byte) error {
	n, err := flexInt(b)
	if err != nil {
		return fmt.Errorf("time: %w", err)
	}
	*m = Millis(n)
	return nil
}

// ID is a numeric identifier (pipeline, run, job, trigger mode) that is
// accepted as a number, a numeric string, or null.
type ID int64

// UnmarshalJSON accepts a number, a numeric string, or null.
func (id *ID) UnmarshalJSON(b []byte) error {
	n, err := flexInt(b)
	if err != nil {
		return fmt.Errorf("id: %w", err)
	}
	*id = ID(n)
	return nil
}

func (id ID) String() string { return strconv.FormatInt(int64(id), 10) }

func flexInt(b []byte) (int64, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return 0, nil
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return 0, err
		}
		if s == "" {
			return 0, nil
		}
		b = []byte(s)
	}
	// A float such as 1.72e12 is a legal JSON number; take its integer part.
	if n, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f != f || f > 9.2e18 || f < -9.2e18 {
		return 0, fmt.Errorf("not an integer: %.40q", b)
	}
	return int64(f), nil
}

// PipelineRun is a run as GetLatestPipelineRun and GetPipelineRun answer it. Only the fields
// the exporter uses are decoded: globalParams (run parameters, which may hold
// secrets), sources and job results are never read into memory.
type PipelineRun struct {
	PipelineID    ID      `json:"pipelineId"`
	PipelineRunID ID      `json:"pipelineRunId"`
	Status        string  `json:"status"`
	TriggerMode   ID      `json:"triggerMode"`
	CreateTime    Millis  `json:"createTime"`
	UpdateTime    Millis  `json:"updateTime"`
	Stages        []Stage `json:"stages"`
	Groups        Groups  `json:"groups"`
	Sources       Sources `json:"sources"`
}

// Stage is one stage of a run. StageInfo is missing for stages the API has
// nothing to say about yet.
type Stage struct {
	Index     string     `json:"index"`
	Name      string     `json:"name"`
	StageInfo *StageInfo `json:"stageInfo"`
}

// StageInfo is a stage's state and its jobs.
type StageInfo struct {
	Name      string `json:"name"`
	Status    string `json:"status"`
	StartTime Millis `json:"startTime"`
	EndTime   Millis `json:"endTime"`
	Jobs      []Job  `json:"jobs"`
}

// Job is one job of a stage. ID changes with every run; JobSign is the
// job's stable key within the pipeline.
type Job struct {
	ID        ID     `json:"id"`
	JobSign   string `json:"jobSign"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	StartTime Millis `json:"startTime"`
	EndTime   Millis `json:"endTime"`
	// Gate is set when the job offers the approval actions
	// (PassPipelineValidate / RefusePipelineValidator): a manual gate.
	Gate Gate `json:"actions"`
}

// Pipeline is what GetPipeline answers, as far as the exporter needs it.
type Pipeline struct {
	Name       string `json:"name"`
	CreateTime Millis `json:"createTime"`
	Tags       Tags   `json:"tagList"`
}

// Trigger modes as documented; any other code is exported as its number.
var triggerModeNames = map[ID]string{
	1: "manual",
	2: "scheduled",
	3: "push",
	5: "pipeline",
	6: "webhook",
}

// TriggerModeName returns the exported name of a trigger mode code, and
// false when the code is unset (zero).
func TriggerModeName(code ID) (string, bool) {
	if code == 0 {
		return "", false
	}
	if name, ok := triggerModeNames[code]; ok {
		return name, true
	}
	return code.String(), true
}

// DecodeRun decodes a GetLatestPipelineRun (or GetPipelineRun) body. It
// returns (nil, nil) for a pipeline that has never run, which the API may
// express as an empty body, null, or an object with no fields at all.
// An error object (see errorObject) is an *Error with ReasonAPIError; any
// other object without a positive pipelineRunId is an error too: it is not
// a run, and taking it for "never ran" would hide a failure.
func DecodeRun(body []byte) (*PipelineRun, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || bytes.Equal(body, []byte("null")) || isEmptyObject(body) {
		return nil, nil
	}
	if body[0] != '{' {
		return nil, fmt.Errorf("run: expected a JSON object, got %s", describeStart(body))
	}
	if e := errorObject(body); e != nil {
		return nil, e
	}
	var run PipelineRun
	if err := json.Unmarshal(body, &run); err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	if run.PipelineRunID <= 0 {
		return nil, errNoRunID
	}
	return &run, nil
}

var errNoRunID = errors.New("run: answer has no pipelineRunId")

// isEmptyObject reports whether body (trimmed) is {} with at most
// whitespace inside.
func isEmptyObject(body []byte) bool {
	return len(body) >= 2 && body[0] == '{' && body[len(body)-1] == '}' && len(bytes.TrimSpace(body[1:len(body)-1])) == 0
}

// DecodePipeline decodes a GetPipeline body; an error object is an *Error
// with ReasonAPIError.
func DecodePipeline(body []byte) (*Pipeline, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, fmt.Errorf("pipeline: expected a JSON object, got %s", describeStart(body))
	}
	if e := errorObject(body); e != nil {
		return nil, e
	}
	var p Pipeline
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	return &p, nil
}

// describeStart names what a body starts with, without quoting much of it:
// bodies can be large and are not ours to log.
func describeStart(body []byte) string {
	switch {
	case len(body) == 0:
		return "an empty body"
	case body[0] == '<':
		return "HTML or XML"
	case body[0] == '[':
		return "a JSON array"
	default:
		n := min(len(body), 16)
		return fmt.Sprintf("%q", body[:n])
	}
}

// The parts of a run and a pipeline that are context, not state: groups,
// tags, code sources and approval gates. The API documents their shapes
// loosely, so each decodes leniently: an entry of an unexpected shape is
// skipped rather than failing the whole run, and only fields that are safe
// to export are kept (never credentials, service connections, webhook URLs).

// Group is a pipeline group the run belongs to.
type Group struct {
	ID   ID
	Name string
}

// Groups decodes `groups: [{id, name}]`, skipping entries of another shape.
type Groups []Group

// UnmarshalJSON implements json.Unmarshaler.
func (g *Groups) UnmarshalJSON(b []byte) error {
	*g = nil
	for _, raw := range lenientArray(b) {
		obj := lenientObject(raw)
		if obj == nil {
			continue
		}
		var id ID
		_ = json.Unmarshal(obj["id"], &id)
		if name := lenientString(obj["name"]); name != "" {
			*g = append(*g, Group{ID: id, Name: name})
		}
	}
	return nil
}

// Tags decodes a pipeline's `tagList`: names as strings or `{name}` objects.
type Tags []string

// UnmarshalJSON implements json.Unmarshaler.
func (t *Tags) UnmarshalJSON(b []byte) error {
	*t = nil
	for _, raw := range lenientArray(b) {
		name := lenientString(raw)
		if obj := lenientObject(raw); obj != nil {
			name = lenientString(obj["name"])
		}
		if name != "" {
			*t = append(*t, name)
		}
	}
	return nil
}

// Source is one code source of a run: `{name, sign, type, data: {repo,
// branch, ...}}`. Commit is data.commitId (or the older data.commint when
// it is a commit hash); empty when the API gives none.
type Source struct {
	Name, Sign, Type string
	Repo, Branch     string
	Commit           string
}

// Sources decodes `sources`, skipping entries of another shape.
type Sources []Source

// UnmarshalJSON implements json.Unmarshaler.
func (s *Sources) UnmarshalJSON(b []byte) error {
	*s = nil
	for _, raw := range lenientArray(b) {
		obj := lenientObject(raw)
		if obj == nil {
			continue
		}
		data := lenientObject(obj["data"])
		src := Source{
			Name: lenientString(obj["name"]), Sign: lenientString(obj["sign"]), Type: lenientString(obj["type"]),
			Repo: lenientString(data["repo"]), Branch: lenientString(data["branch"]),
		}
		for _, key := range []string{"commitId", "commit", "commint"} {
			if c := lenientString(data[key]); isCommitHash(c) {
				src.Commit = c
				break
			}
		}
		*s = append(*s, src)
	}
	return nil
}

// Gate is true when a job's actions offer to pass or refuse an approval.
type Gate bool

// UnmarshalJSON implements json.Unmarshaler: actions are objects with a
// type (or plain strings); unknown shapes mean no gate.
func (g *Gate) UnmarshalJSON(b []byte) error {
	*g = false
	for _, raw := range lenientArray(b) {
		action := lenientString(raw)
		if obj := lenientObject(raw); obj != nil {
			action = lenientString(obj["type"])
			if action == "" {
				action = lenientString(obj["name"])
			}
		}
		if action == "PassPipelineValidate" || action == "RefusePipelineValidator" {
			*g = true
		}
	}
	return nil
}

func lenientArray(b []byte) []json.RawMessage {
	var a []json.RawMessage
	if json.Unmarshal(b, &a) != nil {
		return nil
	}
	return a
}

func lenientObject(b json.RawMessage) map[string]json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// lenientString is a JSON string or number as text; anything else is "".
func lenientString(b json.RawMessage) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(b, &n) == nil {
		return n.String()
	}
	return ""
}

// isCommitHash accepts a Git object id: 7 to 64 hex digits.
func isCommitHash(s string) bool {
	if len(s) < 7 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F') {
			return false
		}
	}
	return true
}
