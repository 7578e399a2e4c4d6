package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

// reasons is every reason a DecodeError may give: fixed texts only, so no
// answer or log line can quote the body.
var reasons = func() map[string]bool {
	m := map[string]bool{}
	for _, r := range []string{"empty body", "invalid JSON", "truncated JSON", "not a JSON object",
		"data after the event", "task: missing", "task: not an object", "task.pipelineId: missing"} {
		m[r] = true
	}
	for _, path := range []string{"event", "action", "task.statusCode"} {
		for _, e := range []valueError{errNotString, errTooLong} {
			m[path+": "+string(e)] = true
		}
	}
	for _, e := range []valueError{errNotNumber, errNotPositiveID} {
		m["task.pipelineId: "+string(e)] = true
	}
	for _, e := range []valueError{errNotNumber, errNotInteger} {
		m["task.buildNumber: "+string(e)] = true
	}
	return m
}()

// FuzzDecode checks that Decode never panics, accepts only valid JSON,
// keeps only bounded strings and positive ids, answers with a fixed
// reason, reads the same way in one-byte reads, and agrees with
// encoding/json's map decoding about task.pipelineId. The seed corpus is
// testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(flowEvent))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := Decode(bytes.NewReader(data))
		ev1, err1 := Decode(iotest.OneByteReader(bytes.NewReader(data)))
		if ev != ev1 || (err == nil) != (err1 == nil) || err != nil && err.Error() != err1.Error() {
			t.Fatalf("one-byte reads differ: %+v, %v vs %+v, %v", ev1, err1, ev, err)
		}
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a DecodeError", err)
			}
			if !reasons[de.Reason] {
				t.Fatalf("reason %q is not one of the fixed texts", de.Reason)
			}
			if ev != (Event{}) {
				t.Fatalf("event %+v with an error", ev)
			}
		} else {
			if !json.Valid(data) {
				t.Fatalf("accepted invalid JSON")
			}
			if ev.PipelineID <= 0 || ev.BuildNumber < 0 {
				t.Fatalf("ids out of range: %+v", ev)
			}
			for _, s := range []string{ev.Event, ev.Action, ev.Status, ev.Branch, ev.CommitID} {
				if len(s) > maxString || !utf8.ValidString(s) {
					t.Fatalf("kept string %q: too long or not UTF-8", s)
				}
			}
		}
		if !json.Valid(data) {
			return
		}
		// encoding/json as the reference: exact keys, the last duplicate wins.
		var ref map[string]any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if dec.Decode(&ref) != nil {
			return // valid JSON but not an object
		}
		task, isObject := ref["task"].(map[string]any)
		switch {
		case err == nil:
			if !isObject {
				t.Fatalf("accepted, but task is %T", ref["task"])
			}
			var text string
			switch v := task["pipelineId"].(type) {
			case json.Number:
				text = string(v)
			case string:
				text = v
			default:
				t.Fatalf("accepted, but pipelineId is %T", v)
			}
			if n, perr := strconv.ParseInt(text, 10, 64); perr == nil && n != ev.PipelineID {
				t.Fatalf("pipelineId %d, encoding/json says %d", ev.PipelineID, n)
			}
			if s, ok := task["statusCode"].(string); ok && s != ev.Status {
				t.Fatalf("status %q, encoding/json says %q", ev.Status, s)
			}
		case err.Error() == reject("task: missing").Error():
			if ref["task"] != nil {
				t.Fatalf("task missing, but encoding/json finds %T", ref["task"])
			}
		case err.Error() == reject("task.pipelineId: missing").Error():
			if !isObject {
				t.Fatalf("pipelineId missing, but task is %T", ref["task"])
			}
			if v := task["pipelineId"]; v != nil && v != "" {
				t.Fatalf("pipelineId missing, but encoding/json finds %#v", v)
			}
		}
	})
}
