package yunxiao

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/ and run with every
// `go test`; `go test -fuzz=^FuzzName$ ./yunxiao` searches further.

// FuzzDecodeRun: any body decodes to a run with a positive id, to nothing
// (only for an empty body, null or {}), or to an error; an error object's
// error is an api_error whose code and message are short and clean. Never
// a panic.
func FuzzDecodeRun(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		run, err := DecodeRun(body)
		if err != nil && run != nil {
			t.Fatalf("DecodeRun returned both a run and %v", err)
		}
		if run != nil && run.PipelineRunID <= 0 {
			t.Fatalf("DecodeRun returned a run without a positive id: %+v", run)
		}
		if run == nil && err == nil {
			trimmed := bytes.TrimSpace(body)
			if len(trimmed) != 0 && string(trimmed) != "null" && !isEmptyObject(trimmed) {
				t.Fatalf("DecodeRun took %q for a pipeline that never ran", body)
			}
		}
		if err != nil && len(err.Error()) > 1000 {
			t.Fatalf("error text of %d bytes quotes too much of the body", len(err.Error()))
		}
		if apiErr, ok := err.(*Error); ok {
			if apiErr.Reason != ReasonAPIError || apiErr.Code == "" && apiErr.Message == "" {
				t.Fatalf("DecodeRun's *Error %+v: want an api_error that says something", apiErr)
			}
			for _, s := range []string{apiErr.Code, apiErr.Message, apiErr.RequestID} {
				if len(s) > maxMessageLen+len("…") || !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
					t.Fatalf("api_error field %q is long or unclean", s)
				}
			}
		}
	})
}

// FuzzDecodeErrorBody: whatever a server sends, what reaches logs and error
// texts is short, valid UTF-8 and free of control characters.
func FuzzDecodeErrorBody(f *testing.F) {
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		code, message, requestID := DecodeErrorBody(contentType, body)
		for _, field := range []struct {
			name, value string
			max         int
		}{
			{"code", code, 100},
			{"message", message, 300},
			{"requestID", requestID, 100},
		} {
			if len(field.value) > field.max {
				t.Fatalf("%s is %d bytes, more than %d: %q", field.name, len(field.value), field.max, field.value)
			}
			if !utf8.ValidString(field.value) {
				t.Fatalf("%s is not valid UTF-8: %q", field.name, field.value)
			}
			for _, r := range field.value {
				if unicode.IsControl(r) || !unicode.IsPrint(r) && r != ' ' {
					t.Fatalf("%s holds %U: %q", field.name, r, field.value)
				}
			}
		}
		if message == "" && code == "" {
			t.Fatal("neither a code nor a message: the error would say nothing")
		}
	})
}

// FuzzParseRetryAfter: any header value gives a wait within [0, 10m].
func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, value string) {
		d, ok := ParseRetryAfter(value, now)
		if d < 0 || d > maxRetryAfter {
			t.Fatalf("ParseRetryAfter(%q) = %v, outside [0, %v]", value, d, maxRetryAfter)
		}
		if !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q) = %v but not ok", value, d)
		}
	})
}

// FuzzDecodePipeline: any GetPipeline body decodes to a pipeline or an
// error, never a panic; tags are names, never empty.
func FuzzDecodePipeline(f *testing.F) {
	for _, seed := range []string{
		`{"name":"p","createTime":1,"tagList":["a",{"name":"b"},{"id":3},7,null]}`,
		`{"name":"p","tagList":{"x":1}}`,
		`{"errorCode":"Forbidden","errorMessage":"no"}`,
		`[]`, `null`, ``, `{"name":12}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := DecodePipeline(body)
		if err != nil && p != nil {
			t.Fatalf("DecodePipeline returned both %+v and %v", p, err)
		}
		if p != nil {
			for _, tag := range p.Tags {
				if tag == "" {
					t.Fatalf("an empty tag from %q", body)
				}
			}
		}
		if err != nil && len(err.Error()) > 1000 {
			t.Fatalf("error text of %d bytes quotes too much of the body", len(err.Error()))
		}
	})
}

// FuzzDecodeList: any page of ListPipelines or ListPipelineRuns decodes to
// items or an error, never a panic; sources and groups of a run decode
// leniently (an odd entry is skipped, never fatal).
func FuzzDecodeList(f *testing.F) {
	for _, seed := range []string{
		`[{"pipelineRunId":1,"status":"SUCCESS","triggerMode":"3","startTime":1,"endTime":"2"}]`,
		`[{"pipelineId":"7","pipelineName":"x"},null,1]`,
		`{"errorCode":"SystemBusy"}`, `{}`, `[`, `null`,
		`{"pipelineRunId":1,"sources":[{"data":{"commitId":"abcdef1","branch":["x"]}},"s",null],"groups":[{"name":{"a":1}}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		runs, err1 := decodeList[RunSummary](body)
		pipes, err2 := decodeList[PipelineSummary](body)
		if (err1 != nil && runs != nil) || (err2 != nil && pipes != nil) {
			t.Fatalf("a list and an error from %q", body)
		}
		// The same body as a run: sources and groups never fail it alone.
		run, err := DecodeRun(body)
		if run != nil {
			for _, s := range run.Sources {
				if s.Commit != "" && !isCommitHash(s.Commit) {
					t.Fatalf("commit %q is not a hash", s.Commit)
				}
			}
			for _, g := range run.Groups {
				if g.Name == "" {
					t.Fatalf("a group without a name from %q", body)
				}
			}
		}
		_ = err
	})
}
