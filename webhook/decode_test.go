package webhook

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// The documented payload, with secrets where a careless decoder would
// leak them.
const flowEvent = `{"event":"task","action":"status",
 "task":{"pipelineId":123,"pipelineName":"构建-部署","stageName":"构建","taskName":"Java 构建",
  "buildNumber":7,"statusCode":"FAIL","statusName":"运行失败",
  "pipelineUrl":"https://flow.aliyun.com/pipelines/123/current","message":"secret-in-message"},
 "sources":[{"repo":"https://codeup.aliyun.com/x/y.git","branch":"master","commitId":"9f1c2e","privousCommitId":"77aa01"},
            {"repo":"z","branch":"second","commitId":"ffff"}],
 "globalParams":[{"key":"DB_PASSWORD","value":"secret-in-params"}]}`

func TestDecode(t *testing.T) {
	full := Event{Event: "task", Action: "status", PipelineID: 123, Status: "FAIL", BuildNumber: 7, Branch: "master", CommitID: "9f1c2e"}
	task := func(fields string) string { return `{"event":"task","action":"status","task":{` + fields + `}}` }
	id := func(n int64) Event { return Event{Event: "task", Action: "status", PipelineID: n} }
	long := strings.Repeat("x", maxString+1)
	for _, tc := range []struct {
		name string
		body string
		want Event
		err  string // the DecodeError's reason; "" for success
	}{
		{"documented payload", flowEvent, full, ""},
		{"ids as strings", task(`"pipelineId":"123","buildNumber":"7","statusCode":"FAIL"`), Event{Event: "task", Action: "status", PipelineID: 123, BuildNumber: 7, Status: "FAIL"}, ""},
		{"float id with exponent", task(`"pipelineId":1.23e5`), id(123000), ""},
		{"exponent id in a string", task(`"pipelineId":"1.23E+5"`), id(123000), ""},
		{"fraction that is an integer", task(`"pipelineId":100000e-5`), id(1), ""},
		{"trailing fraction zeros", task(`"pipelineId":42.000`), id(42), ""},
		{"leading zeros in a string", task(`"pipelineId":"007"`), id(7), ""},
		{"largest id", task(`"pipelineId":9223372036854775807`), id(9223372036854775807), ""},
		{"large float id", task(`"pipelineId":9.2e18`), id(9200000000000000000), ""},
		{"misspelt UNKOWN status", task(`"pipelineId":1,"statusCode":"UNKOWN"`), Event{Event: "task", Action: "status", PipelineID: 1, Status: "UNKOWN"}, ""},
		{"unknown status", task(`"pipelineId":1,"statusCode":"PAUSED_BY_SOMEONE"`), Event{Event: "task", Action: "status", PipelineID: 1, Status: "PAUSED_BY_SOMEONE"}, ""},
		{"CJK everywhere", `{"event":"任务","action":"状态","task":{"pipelineId":5,"pipelineName":"流水线","statusCode":"失败"},"sources":[{"branch":"特性/分支"}]}`,
			Event{Event: "任务", Action: "状态", PipelineID: 5, Status: "失败", Branch: "特性/分支"}, ""},
		{"unknown fields and nested junk", `{"zzz":[[[{"a":[1,2,{"b":null}]}]]],"task":{"x":{"y":[true,false]},"pipelineId":9,"z":1e308},"more":{"k":"v"}}`, Event{PipelineID: 9}, ""},
		{"no event or action", `{"task":{"pipelineId":3}}`, Event{PipelineID: 3}, ""},
		{"other event and action kept as sent", `{"event":"pipeline","action":"finish","task":{"pipelineId":3}}`, Event{Event: "pipeline", Action: "finish", PipelineID: 3}, ""},
		{"null strings", `{"event":null,"task":{"pipelineId":3,"statusCode":null,"buildNumber":null},"sources":null,"globalParams":null}`, Event{PipelineID: 3}, ""},
		{"empty buildNumber string", task(`"pipelineId":3,"buildNumber":""`), id(3), ""},
		{"buildNumber zero", task(`"pipelineId":3,"buildNumber":0`), id(3), ""},
		{"last duplicate wins", task(`"pipelineId":1,"pipelineId":"2"`), id(2), ""},
		{"a repeated task replaces the first", `{"task":{"pipelineId":1,"statusCode":"FAIL","buildNumber":3},"task":{"pipelineId":2}}`, Event{PipelineID: 2}, ""},
		{"a null task replaced", `{"task":null,"task":{"pipelineId":2}}`, Event{PipelineID: 2}, ""},
		{"a task replaced by null", `{"task":{"pipelineId":1},"task":null}`, Event{}, "task: missing"},
		{"a task replaced by one without id", `{"task":{"pipelineId":1},"task":{}}`, Event{}, "task.pipelineId: missing"},
		{"invalid UTF-8 replaced", "{\"task\":{\"pipelineId\":1,\"statusCode\":\"F\xffL\"}}", Event{PipelineID: 1, Status: "F\uFFFDL"}, ""},
		{"escapes", `{"task":{"pipelineId":"\u0031\u0032","statusCode":"\u0046AIL"}}`, Event{PipelineID: 12, Status: "FAIL"}, ""},
		{"white space around", " \n\t" + task(`"pipelineId":1`) + "\r\n ", id(1), ""},
		{"field names are exact", `{"Task":{"pipelineId":1},"task":{"PipelineId":2,"pipelineId":3}}`, Event{PipelineID: 3}, ""},
		{"longest kept string", task(`"pipelineId":1,"statusCode":"` + long[1:] + `"`), Event{Event: "task", Action: "status", PipelineID: 1, Status: long[1:]}, ""},

		{"sources not an array", `{"task":{"pipelineId":1},"sources":"x"}`, Event{PipelineID: 1}, ""},
		{"sources an object", `{"task":{"pipelineId":1},"sources":{"branch":"b"}}`, Event{PipelineID: 1}, ""},
		{"first source not an object", `{"task":{"pipelineId":1},"sources":[1,{"branch":"b"}]}`, Event{PipelineID: 1}, ""},
		{"branch too long", `{"task":{"pipelineId":1},"sources":[{"branch":"` + long + `","commitId":"c"}]}`, Event{PipelineID: 1}, ""},
		{"branch not a string", `{"task":{"pipelineId":1},"sources":[{"branch":5,"commitId":"c"}]}`, Event{PipelineID: 1}, ""},
		{"empty sources", `{"task":{"pipelineId":1},"sources":[]}`, Event{PipelineID: 1}, ""},

		{"empty body", "", Event{}, "empty body"},
		{"white space only", "  \n", Event{}, "empty body"},
		{"not JSON", "token=abc", Event{}, "invalid JSON"},
		{"array", `[{"task":{"pipelineId":1}}]`, Event{}, "not a JSON object"},
		{"string", `"task"`, Event{}, "not a JSON object"},
		{"null", `null`, Event{}, "not a JSON object"},
		{"truncated", `{"task":{"pipelineId":1`, Event{}, "truncated JSON"},
		{"truncated in a skipped value", `{"task":{"pipelineId":1},"globalParams":[{"key":"a","val`, Event{}, "truncated JSON"},
		{"truncated after the last member", `{"task":{"pipelineId":1}`, Event{}, "truncated JSON"},
		{"syntax error in a skipped value", `{"task":{"pipelineId":1},"globalParams":[{"key":}]}`, Event{}, "invalid JSON"},
		{"second object", task(`"pipelineId":1`) + `{}`, Event{}, "data after the event"},
		{"trailing garbage", task(`"pipelineId":1`) + ` x`, Event{}, "data after the event"},
		{"trailing comma", task(`"pipelineId":1`) + `,`, Event{}, "data after the event"},
		{"no task", `{"event":"task","action":"status"}`, Event{}, "task: missing"},
		{"null task", `{"task":null}`, Event{}, "task: missing"},
		{"task not an object", `{"task":[{"pipelineId":1}]}`, Event{}, "task: not an object"},
		{"task a string", `{"task":"1"}`, Event{}, "task: not an object"},
		{"missing pipelineId", task(`"pipelineName":"x","statusCode":"FAIL"`), Event{}, "task.pipelineId: missing"},
		{"null pipelineId", task(`"pipelineId":null`), Event{}, "task.pipelineId: missing"},
		{"empty pipelineId", task(`"pipelineId":""`), Event{}, "task.pipelineId: missing"},
		{"pipelineId zero", task(`"pipelineId":0`), Event{}, "task.pipelineId: not a positive integer"},
		{"pipelineId zero string", task(`"pipelineId":"0"`), Event{}, "task.pipelineId: not a positive integer"},
		{"pipelineId negative", task(`"pipelineId":-5`), Event{}, "task.pipelineId: not a positive integer"},
		{"pipelineId negative string", task(`"pipelineId":"-5"`), Event{}, "task.pipelineId: not a positive integer"},
		{"pipelineId fraction", task(`"pipelineId":1.5`), Event{}, "task.pipelineId: not a positive integer"},
		{"pipelineId small exponent", task(`"pipelineId":1e-3`), Event{}, "task.pipelineId: not a positive integer"},
		{"pipelineId overflow", task(`"pipelineId":9223372036854775808`), Event{}, "task.pipelineId: not a positive integer"},
		{"pipelineId huge", task(`"pipelineId":1e400`), Event{}, "task.pipelineId: not a positive integer"},
		{"pipelineId huge exponent", task(`"pipelineId":1e99999999999999999999`), Event{}, "task.pipelineId: not a positive integer"},
		{"pipelineId tiny exponent", task(`"pipelineId":1e-99999999999999999999`), Event{}, "task.pipelineId: not a positive integer"},
		{"pipelineId many digits", task(`"pipelineId":` + strings.Repeat("1", 100)), Event{}, "task.pipelineId: not a positive integer"},
		{"pipelineId not numeric", task(`"pipelineId":"abc"`), Event{}, "task.pipelineId: not a positive integer"},
		{"pipelineId with spaces", task(`"pipelineId":" 12"`), Event{}, "task.pipelineId: not a positive integer"},
		{"pipelineId hex", task(`"pipelineId":"0x10"`), Event{}, "task.pipelineId: not a positive integer"},
		{"pipelineId NaN", task(`"pipelineId":"NaN"`), Event{}, "task.pipelineId: not a positive integer"},
		{"pipelineId bool", task(`"pipelineId":true`), Event{}, "task.pipelineId: not a number or a string"},
		{"pipelineId object", task(`"pipelineId":{"id":1}`), Event{}, "task.pipelineId: not a number or a string"},
		{"pipelineId array", task(`"pipelineId":[1]`), Event{}, "task.pipelineId: not a number or a string"},
		{"zero after a good one", task(`"pipelineId":1,"pipelineId":0`), Event{}, "task.pipelineId: not a positive integer"},
		{"null after a good one", task(`"pipelineId":1,"pipelineId":null`), Event{}, "task.pipelineId: missing"},
		{"buildNumber negative", task(`"pipelineId":1,"buildNumber":-1`), Event{}, "task.buildNumber: not a non-negative integer"},
		{"buildNumber fraction", task(`"pipelineId":1,"buildNumber":"7.5"`), Event{}, "task.buildNumber: not a non-negative integer"},
		{"buildNumber bool", task(`"pipelineId":1,"buildNumber":false`), Event{}, "task.buildNumber: not a number or a string"},
		{"statusCode number", task(`"pipelineId":1,"statusCode":3`), Event{}, "task.statusCode: not a string"},
		{"statusCode object", task(`"pipelineId":1,"statusCode":{"code":"FAIL"}`), Event{}, "task.statusCode: not a string"},
		{"statusCode too long", task(`"pipelineId":1,"statusCode":"` + long + `"`), Event{}, "task.statusCode: longer than 256 bytes"},
		{"statusCode too long escaped", task(`"pipelineId":1,"statusCode":"` + strings.Repeat(`\u0041`, maxString+1) + `"`), Event{}, "task.statusCode: longer than 256 bytes"},
		{"event not a string", `{"event":1,"task":{"pipelineId":1}}`, Event{}, "event: not a string"},
		{"action too long", `{"action":"` + long + `","task":{"pipelineId":1}}`, Event{}, "action: longer than 256 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(strings.NewReader(tc.body))
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if got != tc.want {
					t.Fatalf("Decode = %+v\nwant     %+v", got, tc.want)
				}
				return
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode = %+v, %v; want a DecodeError %q", got, err, tc.err)
			}
			if de.Reason != tc.err {
				t.Errorf("reason = %q, want %q", de.Reason, tc.err)
			}
			if got != (Event{}) {
				t.Errorf("event with an error = %+v, want zero", got)
			}
		})
	}
}

// The decoder streams: the same answers whatever the read sizes.
func TestDecodeOneByteReads(t *testing.T) {
	ev, err := Decode(iotest.OneByteReader(strings.NewReader(flowEvent)))
	if err != nil || ev.PipelineID != 123 || ev.Branch != "master" {
		t.Fatalf("Decode = %+v, %v", ev, err)
	}
	_, err = Decode(iotest.OneByteReader(strings.NewReader(`{"task":{"pipelineId":1}} x`)))
	var de *DecodeError
	if !errors.As(err, &de) || de.Reason != "data after the event" {
		t.Fatalf("Decode = %v", err)
	}
}

// A failing reader is the reader's error, wrapped, not a DecodeError.
func TestDecodeReadError(t *testing.T) {
	boom := errors.New("connection reset")
	for _, prefix := range []string{"", `{"task":{"pipelineId":1},"globalParams":[`, `{"task":{"pipelineId":1}}`} {
		_, err := Decode(io.MultiReader(strings.NewReader(prefix), iotest.ErrReader(boom)))
		var de *DecodeError
		if !errors.Is(err, boom) || errors.As(err, &de) {
			t.Errorf("after %q: err = %v, want the read error", prefix, err)
		}
	}
}

// No error text quotes the body: secrets in any field stay out of it.
func TestDecodeErrorsNeverQuoteTheBody(t *testing.T) {
	const secret = "hunter2-secret"
	for _, body := range []string{
		`{"globalParams":[{"key":"` + secret + `"}]}`,
		`{"task":{"pipelineId":"` + secret + `"}}`,
		`{"task":{"pipelineId":1,"statusCode":` + secret + `}}`,
		`{"task":{"pipelineId":1,"buildNumber":"` + secret + `"}}`,
		`{"task":{"pipelineId":1}} ` + secret,
		`{"` + secret + `":}`,
		secret,
	} {
		_, err := Decode(strings.NewReader(body))
		if err == nil {
			t.Fatalf("Decode(%q) succeeded", body)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "hunter") {
			t.Errorf("error %q quotes the body", err)
		}
	}
}

// globalParams (and any unknown value) is scanned by the decoder, never
// decoded: nothing of a 900 KiB value is retained, and decoding costs no
// allocation per parameter.
func TestDecodeSkipsGlobalParams(t *testing.T) {
	const size = 900 << 10
	oneValue := `{"task":{"pipelineId":77,"statusCode":"RUNNING"},"globalParams":[{"key":"BIG","value":"` +
		strings.Repeat("s", size) + `"}]}`
	var many strings.Builder
	many.WriteString(`{"task":{"pipelineId":77,"statusCode":"RUNNING"},"globalParams":[`)
	for i := 0; many.Len() < size; i++ {
		if i > 0 {
			many.WriteByte(',')
		}
		fmt.Fprintf(&many, `{"key":"PARAM_%d","value":"secret-value-%d","encrypted":false}`, i, i)
	}
	many.WriteString(`]}`)
	small := []byte(`{"task":{"pipelineId":77,"statusCode":"RUNNING"},"globalParams":[]}`)
	want := Event{PipelineID: 77, Status: "RUNNING"}

	for name, body := range map[string][]byte{"one 900 KiB value": []byte(oneValue), "about 12,000 parameters": []byte(many.String())} {
		t.Run(name, func(t *testing.T) {
			ev, err := Decode(bytes.NewReader(body))
			if err != nil || ev != want {
				t.Fatalf("Decode = %+v, %v; want %+v", ev, err, want)
			}

			// Retained: the heap after decoding, with the event alive,
			// holds nothing of the body's size.
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			ev, err = Decode(bytes.NewReader(body))
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(ev)
			if err != nil {
				t.Fatal(err)
			}
			if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 64<<10 {
				t.Errorf("heap grew by %d bytes across Decode, want far less than the %d-byte value", grew, size)
			}

			// Allocated: a handful (the decoder's buffer growing to hold one
			// value), not one or more per parameter as decoding would cost.
			base := testing.AllocsPerRun(10, func() { _, _ = Decode(bytes.NewReader(small)) })
			allocs := testing.AllocsPerRun(10, func() { _, _ = Decode(bytes.NewReader(body)) })
			if allocs-base > 20 {
				t.Errorf("Decode allocated %v times (%v for an empty globalParams), want at most 20 more", allocs, base)
			}
			t.Logf("allocations: %v (empty globalParams: %v)", allocs, base)
		})
	}
}

func TestParseInteger(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "-0": 0, "0.0e10": 0, "1": 1, "10": 10, "1e1": 10, "1E+1": 10, "12.5e1": 125,
		"0.001e3": 1, "1000e-3": 1, "9223372036854775807": 9223372036854775807,
		"922337203685477580.7e1": 9223372036854775807, "00000000000000000000000000000000000000000001": 1,
	} {
		if got, ok := parseInteger([]byte(in)); !ok || got != want {
			t.Errorf("parseInteger(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{
		"", "-", "-1", "1.", ".5", "1e", "1e+", "+1", "1.5", "1e-1", "9223372036854775808",
		"1e19", "10000000000000000000", "1x", "1.2.3", "1e5e5", " 1", "1 ", "NaN", "Inf",
		"1e1000001", strings.Repeat("9", 65),
	} {
		if got, ok := parseInteger([]byte(in)); ok {
			t.Errorf("parseInteger(%q) = %d, ok; want refused", in, got)
		}
	}
}
