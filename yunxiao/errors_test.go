package yunxiao

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestDecodeErrorBody(t *testing.T) {
	long := strings.Repeat("é", 150) // 300 bytes
	tests := []struct {
		name        string
		contentType string
		body        string
		code, msg   string
		requestID   string
	}{
		{
			name: "documented JSON", contentType: "application/json",
			body: `{"errorCode":"InvalidTokenError","errorMessage":"the token is invalid","requestId":"A1B2"}`,
			code: "InvalidTokenError", msg: "the token is invalid", requestID: "A1B2",
		},
		{
			name: "extra fields", body: `{"errorCode":"Forbidden","errorMessage":"no","requestId":"r","httpStatus":403,"traceId":"t","errorDescription":"d"}`,
			code: "Forbidden", msg: "no", requestID: "r",
		},
		{name: "alternative names", body: `{"code":"Throttling","message":"slow down"}`, code: "Throttling", msg: "slow down"},
		{name: "documented names win", body: `{"errorCode":"A","code":"B","errorMessage":"m1","message":"m2"}`, code: "A", msg: "m1"},
		{name: "code only", body: `{"errorCode":"NotFound"}`, code: "NotFound"},
		{name: "message only", body: ` {"errorMessage":"pipeline not found"} `, msg: "pipeline not found"},
		{
			name: "control characters and newlines", body: `{"errorCode":"Bad\u0000Code","errorMessage":"line one\nline two\t\u001b[31mred\u202e","requestId":"r\u0007"}`,
			code: "BadCode", msg: "line one line two [31mred", requestID: "r",
		},
		{name: "long message cut on a rune boundary", body: `{"errorMessage":"` + long + `"}`, msg: strings.Repeat("é", 100) + "…"},
		{name: "blank code", body: `{"code":" "}`, msg: "unrecognised JSON body (12 bytes)"},
		{name: "control-only code falls back to the other name", body: `{"errorCode":"\u0000","code":"Throttling"}`, code: "Throttling"},
		{name: "empty", body: ``, msg: "empty body"},
		{name: "whitespace", body: " \n ", msg: "empty body"},
		{name: "JSON without known fields", body: `{"status":500,"error":"Internal Server Error"}`, msg: "unrecognised JSON body (46 bytes)"},
		{name: "JSON with wrong types", body: `{"errorCode":500}`, msg: "unrecognised JSON body (17 bytes)"},
		{name: "JSON array", body: `["x"]`, msg: "unrecognised JSON body (5 bytes)"},
		{name: "broken JSON", body: `{"errorCode":`, msg: "unrecognised JSON body (13 bytes)"},
		{
			name: "HTML with title", contentType: "text/html",
			body: "<html>\n<head><title>502 Bad Gateway</title></head>\n<body><center><h1>502 Bad Gateway</h1></center><hr><center>Tengine</center></body>\n</html>\n",
			msg:  `HTML page "502 Bad Gateway" (142 bytes)`,
		},
		{name: "HTML title with attributes and spaces", body: "<HTML><TITLE lang=en>\n  Service\n Unavailable </TITLE>", msg: `HTML page "Service Unavailable" (53 bytes)`},
		{name: "HTML without title", body: "<html><body>oops</body></html>", msg: "HTML page (30 bytes)"},
		{name: "HTML by content type", contentType: "text/html; charset=utf-8", body: "Bad gateway", msg: "HTML page (11 bytes)"},
		{name: "HTML empty title", body: "<title> </title>", msg: "HTML page (16 bytes)"},
		{name: "plain text", contentType: "text/plain", body: "upstream connect error\r\n", msg: `non-JSON body "upstream connect error"`},
		{name: "long plain text", body: strings.Repeat("x", 100), msg: `non-JSON body "` + strings.Repeat("x", 60) + `…"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg, requestID := DecodeErrorBody(tt.contentType, []byte(tt.body))
			if code != tt.code || msg != tt.msg || requestID != tt.requestID {
				t.Errorf("DecodeErrorBody = (%q, %q, %q), want (%q, %q, %q)", code, msg, requestID, tt.code, tt.msg, tt.requestID)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Endpoint: EndpointGetLatestPipelineRun, Reason: ReasonTimeout, Message: "no answer within 50ms"}, "GetLatestPipelineRun: no answer within 50ms"},
		{&Error{Endpoint: EndpointGetPipeline, StatusCode: 404, Reason: ReasonNotFound, Code: "NotFound", Message: "pipeline not found", RequestID: "r-1"},
			"GetPipeline: HTTP 404 NotFound: pipeline not found (request id r-1)"},
		{&Error{Endpoint: EndpointGetPipeline, StatusCode: 500, Reason: ReasonServerError}, "GetPipeline: HTTP 500"},
		{&Error{Endpoint: EndpointGetLatestPipelineRun, StatusCode: 200, Reason: ReasonBadResponse, Err: errors.New("run: boom")}, "GetLatestPipelineRun: HTTP 200: run: boom"},
		{&Error{Endpoint: EndpointGetLatestPipelineRun, Reason: ReasonNetwork, Message: "m", Err: errors.New("e"), RequestID: "x"}, "GetLatestPipelineRun: m: e (request id x)"},
		{&Error{Endpoint: EndpointGetPipelineRun, StatusCode: 200, Reason: ReasonAPIError, Code: "SystemBusy", Message: "busy", RequestID: "r"},
			"GetPipelineRun: HTTP 200 SystemBusy: busy (request id r)"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestReasonOf(t *testing.T) {
	inner := &Error{Reason: ReasonForbidden}
	tests := []struct {
		err  error
		want Reason
	}{
		{nil, ""},
		{inner, ReasonForbidden},
		{fmt.Errorf("pipeline 5: %w", inner), ReasonForbidden},
		{errors.New("something else"), ReasonNetwork},
		{context.Canceled, ReasonNetwork},
	}
	for _, tt := range tests {
		if got := ReasonOf(tt.err); got != tt.want {
			t.Errorf("ReasonOf(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
	cause := errors.New("cause")
	if !errors.Is(&Error{Err: cause}, cause) {
		t.Error("Error does not unwrap to its cause")
	}
}

func TestIsTokenRefused(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("plain"), false},
		{&Error{StatusCode: 401, Code: "Unauthorized"}, true},
		{&Error{StatusCode: 401, Code: "ExpiredTokenError"}, true},
		{&Error{StatusCode: 401, Code: "InvalidTokenError"}, true},
		{&Error{StatusCode: 401}, true},
		{fmt.Errorf("wrapped: %w", &Error{StatusCode: 401}), true},
		{&Error{StatusCode: 403, Code: "Forbidden"}, false},
		{&Error{StatusCode: 403}, false},
		{&Error{StatusCode: 403, Code: "Forbidden.InvalidUser.UserNotInCurrentOrganization"}, true},
		{&Error{StatusCode: 403, Code: "Forbidden.InvalidOrganizationMember"}, true},
		{&Error{StatusCode: 404, Code: "Forbidden.InvalidUser.UserNotInCurrentOrganization"}, false},
		{&Error{StatusCode: 400, Code: "UnsupportedCurrentTokenType"}, false},
		{&Error{StatusCode: 500}, false},
		{&Error{Reason: ReasonNetwork}, false},
	}
	for _, tt := range tests {
		if got := IsTokenRefused(tt.err); got != tt.want {
			t.Errorf("IsTokenRefused(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestReasonsComplete(t *testing.T) {
	seen := map[Reason]bool{}
	for _, r := range Reasons {
		if r == "" || seen[r] {
			t.Errorf("Reasons has an empty or duplicate entry %q", r)
		}
		seen[r] = true
	}
	if len(Reasons) != 13 {
		t.Errorf("len(Reasons) = %d, want 13 (update this test and the docs when adding one)", len(Reasons))
	}
}
