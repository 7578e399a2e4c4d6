package yunxiao

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/yunxiao-exporter/yunxiao_exporter/flowsim"
)

// TestDecodeRunFull decodes the documented sample answer (with its result
// string escaped, as a real answer has it) field by field.
func TestDecodeRunFull(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "run-full.json"))
	if err != nil {
		t.Fatal(err)
	}
	run, err := DecodeRun(body)
	if err != nil {
		t.Fatalf("DecodeRun: %v", err)
	}
	want := &PipelineRun{
		PipelineID:    123,
		PipelineRunID: 1,
		Status:        "RUNNING",
		TriggerMode:   1,
		CreateTime:    1590730400000,
		UpdateTime:    1590730400000,
		Stages: []Stage{{
			Index: "Group0-Stage0",
			Name:  "Java構建",
			StageInfo: &StageInfo{
				Name:      "Java構建",
				Status:    "RUNNING",
				StartTime: 1729178040000,
				EndTime:   1729178040000,
				Jobs: []Job{{
					ID:        21212,
					JobSign:   "job-1",
					Name:      "Java構建",
					Status:    "RUNNING",
					StartTime: 1729178040000,
					EndTime:   1729178040000,
				}},
			},
		}},
		Groups:  Groups{{ID: 1, Name: "執行命令"}},
		Sources: Sources{{Name: "範例程式碼源", Sign: "assaaaaaasasasa", Type: "Codeup", Repo: "https://codeup.aliyun.com/test.git", Branch: "master"}},
	}
	if !reflect.DeepEqual(run, want) {
		t.Errorf("DecodeRun:\n got %+v\nwant %+v", run, want)
	}
	if got := run.CreateTime.Time().UTC(); !got.Equal(time.Date(2020, 5, 29, 5, 33, 20, 0, time.UTC)) {
		t.Errorf("CreateTime.Time() = %v", got)
	}
	if got := run.CreateTime.Seconds(); got != 1590730400 {
		t.Errorf("CreateTime.Seconds() = %v", got)
	}
}

func TestDecodeRun(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    *PipelineRun // nil with wantErr "" means never run
		wantErr string       // substring of the error
		apiErr  *Error       // the *Error an error object gives (wantErr unused)
	}{
		// Never ran: nothing, null, or an object with no fields at all.
		{name: "empty", body: ""},
		{name: "whitespace", body: " \r\n\t "},
		{name: "null", body: "null"},
		{name: "null with whitespace", body: "\n null \n"},
		{name: "empty object", body: "{}"},
		{name: "empty object with a space", body: "{ }"},
		{name: "empty object with whitespace around and in", body: " \n{\r\n\t }\n"},

		// An error object is the API's failure, not a pipeline that never ran.
		{name: "error object", body: `{"errorCode":"SystemBusy","errorMessage":"the system is busy"}`,
			apiErr: &Error{Reason: ReasonAPIError, Code: "SystemBusy", Message: "the system is busy"}},
		{name: "error object with status 200 and request id", body: `{"errorCode":"SystemBusy","errorMessage":"busy","httpStatus":200,"requestId":"8bf5e28c"}`,
			apiErr: &Error{Reason: ReasonAPIError, Code: "SystemBusy", Message: "busy", RequestID: "8bf5e28c"}},
		{name: "error message only", body: `{"errorMessage":"try later"}`, apiErr: &Error{Reason: ReasonAPIError, Message: "try later"}},
		{name: "success false", body: `{"success":false,"code":"Throttling","message":"slow down"}`,
			apiErr: &Error{Reason: ReasonAPIError, Code: "Throttling", Message: "slow down"}},
		{name: "error object, text cleaned", body: `{"errorCode":"Busy\u0000","errorMessage":"line\none\u001b"}`,
			apiErr: &Error{Reason: ReasonAPIError, Code: "Busy", Message: "line one"}},

		// Any other object without a positive run id is not a run.
		{name: "object without run id", body: `{"pipelineId":5,"status":"","stages":[]}`, wantErr: "run: answer has no pipelineRunId"},
		{name: "run id null", body: `{"pipelineId":5,"pipelineRunId":null}`, wantErr: "run: answer has no pipelineRunId"},
		{name: "run id empty string", body: `{"pipelineId":5,"pipelineRunId":""}`, wantErr: "run: answer has no pipelineRunId"},
		{name: "run id zero", body: `{"pipelineId":5,"pipelineRunId":0,"status":"SUCCESS"}`, wantErr: "run: answer has no pipelineRunId"},
		{name: "run id negative", body: `{"pipelineRunId":-1}`, wantErr: "run: answer has no pipelineRunId"},
		{name: "empty error fields", body: `{"errorCode":"","errorMessage":null,"success":true}`, wantErr: "run: answer has no pipelineRunId"},
		{name: "code and message alone", body: `{"code":"X","message":"y"}`, wantErr: "run: answer has no pipelineRunId"},
		{name: "job result saying successful false is not an error object",
			body: `{"pipelineRunId":9,"stages":[{"stageInfo":{"jobs":[{"id":1,"result":"{\"successful\":false,\"errorCode\":\"E\"}"}]}}]}`,
			want: &PipelineRun{PipelineRunID: 9, Stages: []Stage{{StageInfo: &StageInfo{Jobs: []Job{{ID: 1}}}}}}},
		{
			name: "numbers as strings",
			body: `{"pipelineId":"5","pipelineRunId":"42","triggerMode":"3","createTime":"1700000000000","updateTime":"1700000001000",
				"stages":[{"index":"Group0-Stage0","name":"Build","stageInfo":{"status":"SUCCESS","startTime":"1700000000000","endTime":"1700000001000",
				"jobs":[{"id":"77","jobSign":"build","status":"SUCCESS","startTime":"1700000000000","endTime":"1700000001000"}]}}]}`,
			want: &PipelineRun{PipelineID: 5, PipelineRunID: 42, TriggerMode: 3, CreateTime: 1700000000000, UpdateTime: 1700000001000,
				Stages: []Stage{{Index: "Group0-Stage0", Name: "Build", StageInfo: &StageInfo{Status: "SUCCESS", StartTime: 1700000000000, EndTime: 1700000001000,
					Jobs: []Job{{ID: 77, JobSign: "build", Status: "SUCCESS", StartTime: 1700000000000, EndTime: 1700000001000}}}}}},
		},
		{
			name: "float numbers",
			body: `{"pipelineRunId":4.2e1,"createTime":1.7e12,"updateTime":"1.7e12"}`,
			want: &PipelineRun{PipelineRunID: 42, CreateTime: 1700000000000, UpdateTime: 1700000000000},
		},
		{
			name: "nulls",
			body: `{"pipelineId":null,"pipelineRunId":9,"status":null,"triggerMode":null,"createTime":null,"updateTime":null,"stages":null}`,
			want: &PipelineRun{PipelineRunID: 9},
		},
		{
			name: "null inside stages and jobs",
			body: `{"pipelineRunId":9,"stages":[{"index":null,"name":null,"stageInfo":{"status":null,"startTime":null,"endTime":null,"jobs":[{"id":null,"jobSign":null,"startTime":null,"endTime":null}]}}]}`,
			want: &PipelineRun{PipelineRunID: 9, Stages: []Stage{{StageInfo: &StageInfo{Jobs: []Job{{}}}}}},
		},
		{name: "missing stages", body: `{"pipelineRunId":9,"status":"WAITING"}`, want: &PipelineRun{PipelineRunID: 9, Status: "WAITING"}},
		{name: "empty stages", body: `{"pipelineRunId":9,"stages":[]}`, want: &PipelineRun{PipelineRunID: 9, Stages: []Stage{}}},
		{
			name: "stage without stageInfo",
			body: `{"pipelineRunId":9,"status":"RUNNING","stages":[{"index":"Group0-Stage0","name":"Build","stageInfo":{"status":"RUNNING","jobs":[]}},{"index":"Group0-Stage1","name":"Deploy"},{"index":"Group0-Stage2","name":"Notify","stageInfo":null}]}`,
			want: &PipelineRun{PipelineRunID: 9, Status: "RUNNING", Stages: []Stage{
				{Index: "Group0-Stage0", Name: "Build", StageInfo: &StageInfo{Status: "RUNNING", Jobs: []Job{}}},
				{Index: "Group0-Stage1", Name: "Deploy"},
				{Index: "Group0-Stage2", Name: "Notify"},
			}},
		},
		{
			name: "unknown status and fields are kept and ignored",
			body: `{"pipelineRunId":9,"status":"UNKOWN","somethingNew":{"a":[1,2]},"globalParams":[{"key":"K","value":"V","encrypted":true}]}`,
			want: &PipelineRun{PipelineRunID: 9, Status: "UNKOWN"},
		},
		{
			name: "job result may be any JSON value",
			body: `{"pipelineRunId":9,"stages":[{"stageInfo":{"jobs":[{"id":1,"result":{"not":"a string"},"params":{"k":"v"},"actions":null}]}}]}`,
			want: &PipelineRun{PipelineRunID: 9, Stages: []Stage{{StageInfo: &StageInfo{Jobs: []Job{{ID: 1}}}}}},
		},
		{name: "array", body: `[{"pipelineRunId":1}]`, wantErr: "run: expected a JSON object, got a JSON array"},
		{name: "empty array", body: `[]`, wantErr: "a JSON array"},
		{name: "HTML", body: "<!DOCTYPE html><html><head><title>Login</title></head></html>", wantErr: "run: expected a JSON object, got HTML or XML"},
		{name: "string", body: `"pipelineRunId"`, wantErr: `run: expected a JSON object, got "\"pipelineRunId\""`},
		{name: "number", body: `42`, wantErr: `got "42"`},
		{name: "truncated object", body: `{"pipelineRunId":1,"stages":[`, wantErr: "run: unexpected end of JSON input"},
		{name: "trailing garbage", body: `{"pipelineRunId":1} x`, wantErr: "run: invalid character"},
		{name: "run id not a number", body: `{"pipelineRunId":"abc"}`, wantErr: "id: not an integer"},
		{name: "run id bool", body: `{"pipelineRunId":true}`, wantErr: "id: not an integer"},
		{name: "run id too large", body: `{"pipelineRunId":1e300}`, wantErr: "id: not an integer"},
		{name: "run id NaN string", body: `{"pipelineRunId":"NaN"}`, wantErr: "id: not an integer"},
		{name: "time not a number", body: `{"pipelineRunId":1,"createTime":"yesterday"}`, wantErr: "time: not an integer"},
		{name: "stages an object", body: `{"pipelineRunId":1,"stages":{}}`, wantErr: "run: json: cannot unmarshal object"},
		{name: "status a number", body: `{"pipelineRunId":1,"status":1}`, wantErr: "run: json: cannot unmarshal number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run, err := DecodeRun([]byte(tt.body))
			if tt.apiErr != nil {
				got, ok := err.(*Error)
				if !ok || !reflect.DeepEqual(got, tt.apiErr) || run != nil {
					t.Fatalf("DecodeRun = %+v, %#v; want nil, %+v", run, err, tt.apiErr)
				}
				return
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("DecodeRun error = %v, want one containing %q", err, tt.wantErr)
				}
				if run != nil {
					t.Errorf("DecodeRun returned a run with its error: %+v", run)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeRun: %v", err)
			}
			if !reflect.DeepEqual(run, tt.want) {
				t.Errorf("DecodeRun:\n got %+v\nwant %+v", run, tt.want)
			}
		})
	}
}

func TestDecodePipeline(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    *Pipeline
		wantErr string
	}{
		{name: "documented", body: `{"name":"backend-build","createTime":1700000000000,"groupId":3}`, want: &Pipeline{Name: "backend-build", CreateTime: 1700000000000}},
		{name: "CJK name, string time", body: `{"name":"移动端构建","createTime":"1700000000000"}`, want: &Pipeline{Name: "移动端构建", CreateTime: 1700000000000}},
		{name: "empty object", body: `{}`, want: &Pipeline{}},
		{name: "error object", body: `{"errorCode":"SystemBusy","errorMessage":"busy"}`, wantErr: "SystemBusy: busy"},
		{name: "empty", body: ``, wantErr: "pipeline: expected a JSON object, got an empty body"},
		{name: "null", body: `null`, wantErr: `pipeline: expected a JSON object, got "null"`},
		{name: "array", body: `[]`, wantErr: "got a JSON array"},
		{name: "HTML", body: `<html></html>`, wantErr: "got HTML or XML"},
		{name: "bad JSON", body: `{"name":`, wantErr: "pipeline: unexpected end of JSON input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := DecodePipeline([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("DecodePipeline error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodePipeline: %v", err)
			}
			if !reflect.DeepEqual(p, tt.want) {
				t.Errorf("DecodePipeline = %+v, want %+v", p, tt.want)
			}
		})
	}
}

// TestNoParamsRetained checks that run parameters (globalParams, job
// params), which may hold secrets, have nowhere to go in the decoded types.
func TestNoParamsRetained(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Array || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] {
			return
		}
		seen[typ] = true
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag := f.Tag.Get("json")
			if strings.Contains(strings.ToLower(f.Name), "param") || strings.Contains(strings.ToLower(tag), "param") {
				t.Errorf("%s.%s (json %q) could retain run parameters", path, f.Name, tag)
			}
			walk(path+"."+f.Name, f.Type)
		}
	}
	walk("PipelineRun", reflect.TypeFor[PipelineRun]())
	walk("Pipeline", reflect.TypeFor[Pipeline]())
	if !seen[reflect.TypeFor[Job]()] {
		t.Fatal("the walk did not reach Job: it no longer follows PipelineRun's fields")
	}

	// And by value: the simulator's answer carries a secret parameter.
	p := flowsim.DemoPipelines()[0]
	raw, err := json.Marshal(p.RunAt(time.Now(), time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	const secret = "sim-registry-secret-do-not-export"
	if !strings.Contains(string(raw), secret) {
		t.Fatalf("the simulated run no longer carries %q; update this test", secret)
	}
	run, err := DecodeRun(raw)
	if err != nil || run == nil {
		t.Fatalf("DecodeRun = %v, %v", run, err)
	}
	for _, s := range []string{fmt.Sprintf("%+v", *run), fmt.Sprintf("%#v", run.Stages)} {
		if strings.Contains(s, secret) || strings.Contains(s, "REGISTRY_PASSWORD") {
			t.Errorf("decoded run retains a parameter: %s", s)
		}
	}
}

func TestTriggerModeName(t *testing.T) {
	tests := []struct {
		code ID
		want string
		ok   bool
	}{
		{0, "", false},
		{1, "manual", true},
		{2, "scheduled", true},
		{3, "push", true},
		{4, "4", true},
		{5, "pipeline", true},
		{6, "webhook", true},
		{99, "99", true},
		{-1, "-1", true},
	}
	for _, tt := range tests {
		got, ok := TriggerModeName(tt.code)
		if got != tt.want || ok != tt.ok {
			t.Errorf("TriggerModeName(%d) = %q, %v; want %q, %v", tt.code, got, ok, tt.want, tt.ok)
		}
	}
}

func TestMillis(t *testing.T) {
	tests := []struct {
		json  string
		want  Millis
		isSet bool
	}{
		{`0`, 0, false},
		{`null`, 0, false},
		{`""`, 0, false},
		{`-5`, -5, false},
		{`1700000000123`, 1700000000123, true},
		{`"1700000000123"`, 1700000000123, true},
		{` 1700000000123 `, 1700000000123, true},
	}
	for _, tt := range tests {
		var m Millis
		if err := json.Unmarshal([]byte(tt.json), &m); err != nil {
			t.Errorf("Unmarshal(%s): %v", tt.json, err)
			continue
		}
		if m != tt.want || m.IsSet() != tt.isSet {
			t.Errorf("Unmarshal(%s) = %d (set %v), want %d (set %v)", tt.json, m, m.IsSet(), tt.want, tt.isSet)
		}
	}
	if got := Millis(1700000000123).Time(); !got.Equal(time.UnixMilli(1700000000123)) {
		t.Errorf("Time() = %v", got)
	}
}

// The context parts decode leniently: odd shapes are skipped, never fatal,
// and only safe fields are kept.
func TestDecodeContextLeniently(t *testing.T) {
	cases := []struct {
		name string
		body string
		want PipelineRun
	}{
		{"groups of other shapes", `{"pipelineRunId":1,"groups":[{"id":"2","name":"backend"},"x",null,{"id":3},{"name":7}]}`,
			PipelineRun{PipelineRunID: 1, Groups: Groups{{ID: 2, Name: "backend"}, {Name: "7"}}}},
		{"groups not an array", `{"pipelineRunId":1,"groups":{"a":1}}`, PipelineRun{PipelineRunID: 1}},
		{"source with commit and credentials", `{"pipelineRunId":1,"sources":[{"name":"app","type":"codeup","data":{"repo":"https://u:secret@x/a.git","branch":"feat/移动","commitId":"0123456789abcdef0123456789abcdef01234567","credentialId":"c-1","webhook":"https://hook"}}]}`,
			PipelineRun{PipelineRunID: 1, Sources: Sources{{Name: "app", Type: "codeup", Repo: "https://u:secret@x/a.git", Branch: "feat/移动", Commit: "0123456789abcdef0123456789abcdef01234567"}}}},
		{"old commint, and a commit that is not a hash", `{"pipelineRunId":1,"sources":[{"data":{"commint":"abcdef1"}},{"data":{"commitId":"{\"id\":1}"}}]}`,
			PipelineRun{PipelineRunID: 1, Sources: Sources{{Commit: "abcdef1"}, {}}}},
		{"source data missing or odd", `{"pipelineRunId":1,"sources":[{"name":"a"},{"name":"b","data":[1]},{"name":"c","data":{"branch":{"x":1}}}]}`,
			PipelineRun{PipelineRunID: 1, Sources: Sources{{Name: "a"}, {Name: "b"}, {Name: "c"}}}},
	}
	for _, tc := range cases {
		run, err := DecodeRun([]byte(tc.body))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(*run, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, *run, tc.want)
		}
	}
	job := `{"pipelineRunId":1,"stages":[{"stageInfo":{"jobs":[{"id":1,"actions":[{"type":"PassPipelineValidate"}]},{"id":2,"actions":["RefusePipelineValidator"]},{"id":3,"actions":[{"type":"Retry"}]},{"id":4,"actions":"x"}]}}]}`
	run, err := DecodeRun([]byte(job))
	if err != nil {
		t.Fatal(err)
	}
	var gates []bool
	for _, j := range run.Stages[0].StageInfo.Jobs {
		gates = append(gates, bool(j.Gate))
	}
	if !reflect.DeepEqual(gates, []bool{true, true, false, false}) {
		t.Errorf("gates: %v", gates)
	}
	p, err := DecodePipeline([]byte(`{"name":"p","tagList":["b",{"name":"a"},{"id":3},7]}`))
	if err != nil || !reflect.DeepEqual(p.Tags, Tags{"b", "a", "7"}) {
		t.Errorf("tags: %+v %v", p, err)
	}
}
