package yunxiao

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// Reason is the cause of a failed call, coarse enough to be a label value
// and to decide what to log, retry and alert on.
type Reason string

// The reasons a call can fail for.
const (
	ReasonTimeout      Reason = "timeout"      // the request or the caller's deadline ran out
	ReasonCanceled     Reason = "canceled"     // the caller gave up
	ReasonNetwork      Reason = "network"      // connection, DNS or TLS failure
	ReasonUnauthorized Reason = "unauthorized" // 401: token missing, invalid or expired
	ReasonForbidden    Reason = "forbidden"    // 403
	ReasonNotFound     Reason = "not_found"    // 404
	ReasonRateLimited  Reason = "rate_limited" // 429, or waiting out an earlier 429
	ReasonServerError  Reason = "server_error" // 5xx
	ReasonClientError  Reason = "client_error" // other 4xx, unexpected 1xx/3xx
	ReasonBadResponse  Reason = "bad_response" // 2xx whose body is not what was documented
	ReasonAPIError     Reason = "api_error"    // 2xx whose body is an error object
	ReasonTooLarge     Reason = "too_large"    // body over the size cap
	ReasonRedirect     Reason = "redirect"     // redirect refused: to another host, or too many
)

// Reasons lists every Reason, for pre-declaring label values and docs.
var Reasons = []Reason{
	ReasonTimeout, ReasonCanceled, ReasonNetwork, ReasonUnauthorized, ReasonForbidden,
	ReasonNotFound, ReasonRateLimited, ReasonServerError, ReasonClientError,
	ReasonBadResponse, ReasonAPIError, ReasonTooLarge, ReasonRedirect,
}

// Error is a failed API call. Its text never holds the token: the token
// travels only in a request header, and text taken from response bodies is
// redacted before it is stored here.
type Error struct {
	Endpoint   string // the endpoint label: GetLatestPipelineRun, GetPipeline, ...
	StatusCode int    // 0 when no HTTP answer arrived
	Reason     Reason
	Code       string // errorCode (or code) from a JSON error body
	Message    string // errorMessage, or a description of a non-JSON body
	RequestID  string
	Err        error // the underlying transport or decoding error, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Endpoint)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
	}
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request id %s)", e.RequestID)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of err, or "" when err is nil.
func ReasonOf(err error) Reason {
	if err == nil {
		return ""
	}
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr.Reason
	}
	return ReasonNetwork
}

// IsTokenRefused reports whether the API refused the token itself, as
// opposed to refusing one pipeline: 401, or a 403 that says the token's
// user is not in the organization.
func IsTokenRefused(err error) bool {
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.StatusCode {
	case http.StatusUnauthorized:
		return true
	case http.StatusForbidden:
		return strings.HasPrefix(apiErr.Code, "Forbidden.Invalid")
	}
	return false
}

// ErrorBody is the documented shape of an error answer.
type ErrorBody struct {
	Code      string `json:"errorCode"`
	Message   string `json:"errorMessage"`
	RequestID string `json:"requestId"`
	// Some services answer with these instead.
	AltCode    string `json:"code"`
	AltMessage string `json:"message"`
}

const maxMessageLen = 200

var htmlTitle = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)

// DecodeErrorBody turns an error answer into (code, message, requestID).
// It decodes the documented JSON shape and otherwise describes the body
// (an HTML gateway page, plain text, nothing) without trusting it: the
// message is cut short and stripped of control characters.
func DecodeErrorBody(contentType string, body []byte) (code, message, requestID string) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var eb ErrorBody
		if json.Unmarshal(trimmed, &eb) == nil {
			// Cleaned first: a code of only blanks or control characters is
			// no code, and the body is then described instead.
			code = firstNonEmpty(clean(eb.Code, 80), clean(eb.AltCode, 80))
			message = firstNonEmpty(clean(eb.Message, maxMessageLen), clean(eb.AltMessage, maxMessageLen))
			if code != "" || message != "" {
				return code, message, clean(eb.RequestID, 80)
			}
		}
	}
	switch {
	case len(trimmed) == 0:
		return "", "empty body", ""
	case trimmed[0] == '<' || strings.Contains(contentType, "html"):
		if m := htmlTitle.FindSubmatch(trimmed); m != nil {
			if title := clean(string(m[1]), 80); title != "" {
				return "", fmt.Sprintf("HTML page %q (%d bytes)", title, len(body)), ""
			}
		}
		return "", fmt.Sprintf("HTML page (%d bytes)", len(body)), ""
	case trimmed[0] == '{' || trimmed[0] == '[':
		return "", fmt.Sprintf("unrecognised JSON body (%d bytes)", len(body)), ""
	default:
		return "", fmt.Sprintf("non-JSON body %q", clean(string(trimmed), 60)), ""
	}
}

// errorObject returns the failure a 2xx answer reports in its body, as an
// *Error with ReasonAPIError (no endpoint or status yet), or nil when body
// is not an error object. Flow has been seen to answer 200 with
// {"errorCode":"SystemBusy","errorMessage":"…"}; other Alibaba services
// answer {"success":false,"code":…,"message":…}. Without this check such an
// answer decodes as a run or pipeline with every field empty: a pipeline
// that "never ran", or one with no name.
//
// An error object is a JSON object with a non-empty errorCode or
// errorMessage, or with success (or successful) false. code and message
// alone are not enough: nothing says a real answer never has them.
// Only top-level keys are read, so a job's result string, which holds
// "successful":true, is never mistaken for one.
func errorObject(body []byte) *Error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil
	}
	var f struct {
		ErrorCode    json.RawMessage `json:"errorCode"`
		ErrorMessage json.RawMessage `json:"errorMessage"`
		Code         json.RawMessage `json:"code"`
		Message      json.RawMessage `json:"message"`
		Success      json.RawMessage `json:"success"`
		Successful   json.RawMessage `json:"successful"`
		RequestID    json.RawMessage `json:"requestId"`
	}
	if json.Unmarshal(body, &f) != nil {
		return nil // not a JSON object: the caller's decoder says what is wrong
	}
	code, message := scalarText(f.ErrorCode, 80), scalarText(f.ErrorMessage, maxMessageLen)
	failed := isFalse(f.Success) || isFalse(f.Successful)
	if code == "" && message == "" && !failed {
		return nil
	}
	code = firstNonEmpty(code, scalarText(f.Code, 80))
	message = firstNonEmpty(message, scalarText(f.Message, maxMessageLen))
	if code == "" && message == "" {
		message = "the answer says success: false"
	}
	return &Error{Reason: ReasonAPIError, Code: code, Message: message, RequestID: scalarText(f.RequestID, 80)}
}

// scalarText is a JSON string or number as clean text; null, "", 0, true,
// false, objects and arrays are no text.
func scalarText(raw json.RawMessage, max int) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		return clean(s, max)
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		if f, err := strconv.ParseFloat(string(raw), 64); err != nil || f == 0 {
			return ""
		}
		return clean(string(raw), max)
	}
	return ""
}

// isFalse reports whether raw is false or "false".
func isFalse(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	if bytes.Equal(raw, []byte("false")) {
		return true
	}
	var s string
	return len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil && strings.EqualFold(strings.TrimSpace(s), "false")
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// clean makes outside text safe to log and show: printable runes only,
// whitespace folded, at most max bytes (cut on a rune boundary).
func clean(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == unicode.ReplacementChar:
			return -1
		case unicode.IsSpace(r):
			return ' '
		case !unicode.IsPrint(r):
			return -1
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
