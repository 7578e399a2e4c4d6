package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// Event is what the receiver keeps of one Flow notification. It is a
// signal to re-read PipelineID from the API; none of it is exported as a
// metric. The strings are at most 256 bytes (maxString), untrusted, and
// meant for debug logs only.
type Event struct {
	Event  string // top-level "event"; "task" in every documented payload, not enforced
	Action string // top-level "action"; "status" in every documented payload, not enforced

	PipelineID  int64  // task.pipelineId; always > 0
	Status      string // task.statusCode as sent: an open set (UNKOWN, sic, included); may be ""
	BuildNumber int64  // task.buildNumber; 0 when absent

	Branch   string // sources[0].branch; "" when absent or not a short string
	CommitID string // sources[0].commitId; "" when absent or not a short string
}

// DecodeError says why a body is not a Flow event. Reason is short, comes
// from a fixed set of texts, and never quotes the body.
type DecodeError struct {
	Reason string
}

func (e *DecodeError) Error() string { return "not a Flow webhook event: " + e.Reason }

func reject(reason string) error { return &DecodeError{Reason: reason} }

// maxString bounds each string the decoder keeps.
const maxString = 256

// maxNumber bounds the text of an id, as a number or inside a string.
const maxNumber = 64

// valueError is what the value decoders below return; the walk prefixes
// it with the field's path.
type valueError string

func (e valueError) Error() string { return string(e) }

const (
	errNotString     valueError = "not a string"
	errTooLong       valueError = "longer than 256 bytes"
	errNotNumber     valueError = "not a number or a string"
	errNotInteger    valueError = "not a non-negative integer"
	errNotPositiveID valueError = "not a positive integer"
)

// Decode reads one Flow webhook event from r.
//
// The body must be one JSON object with a "task" object whose
// "pipelineId" is a positive integer, given as a number or a string (an
// exponent such as 1.23e5 is fine when the value is an integer). Unknown
// fields are ignored; white space may follow the object, nothing else.
// Field names are matched exactly (within sources, as encoding/json
// matches struct fields). A body that is not such an event gives
// a *DecodeError; a failure of r itself is returned wrapped, so that
// errors.As finds, for example, an *http.MaxBytesError.
//
// Nothing is unmarshalled that Event does not keep. The object is walked
// token by token, so the decoder buffers one member at a time; the value
// of globalParams and of every unknown field is consumed by
// json.Decoder.Decode into a type whose UnmarshalJSON ignores its input:
// the decoder's scanner validates the value inside its own read buffer,
// and no Go string, slice or map is made from it. The buffer's bytes are
// overwritten as the walk goes on and dropped with the decoder.
func Decode(r io.Reader) (Event, error) {
	dec := json.NewDecoder(r)
	tok, err := valueToken(dec)
	if errors.Is(err, io.EOF) {
		return Event{}, reject("empty body")
	}
	if err != nil {
		return Event{}, streamError(err)
	}
	if tok != json.Delim('{') {
		return Event{}, reject("not a JSON object")
	}
	var (
		ev      Event
		hasTask bool    // the last "task" member is an object
		id      flexInt // its last pipelineId
	)
	for dec.More() {
		key, err := nextKey(dec)
		if err != nil {
			return Event{}, err
		}
		switch key {
		case "event":
			err = decodeString(dec, &ev.Event, "event")
		case "action":
			err = decodeString(dec, &ev.Action, "action")
		case "task": // a repeated member replaces the earlier one, as in a map
			ev.Status, ev.BuildNumber, id = "", 0, flexInt{}
			hasTask, err = decodeTask(dec, &ev, &id)
		case "sources":
			err = decodeSources(dec, &ev)
		case "globalParams":
			// Run parameters may hold secrets: scanned, never decoded.
			err = skip(dec)
		default:
			err = skip(dec)
		}
		if err != nil {
			return Event{}, err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return Event{}, streamError(err)
	}
	if _, err := valueToken(dec); !errors.Is(err, io.EOF) {
		var syntax *json.SyntaxError
		if err == nil || errors.As(err, &syntax) {
			return Event{}, reject("data after the event")
		}
		return Event{}, streamError(err)
	}
	switch {
	case !hasTask:
		return Event{}, reject("task: missing")
	case !id.set:
		return Event{}, reject("task.pipelineId: missing")
	}
	ev.PipelineID = id.n
	return ev, nil
}

// streamError turns an error of the decoder's stream into a *DecodeError
// when the body is at fault, and wraps it otherwise.
func streamError(err error) error {
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &syntax):
		return reject("invalid JSON")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return reject("truncated JSON")
	}
	return fmt.Errorf("reading the webhook body: %w", err)
}

// fieldError names the field a value error is about.
func fieldError(path string, err error) error {
	var ve valueError
	if errors.As(err, &ve) {
		return reject(path + ": " + string(ve))
	}
	return streamError(err)
}

// valueToken reads the next token where a value may stand. A number beyond
// float64's range is still a token there (Token fails on it, having
// consumed it), only not a delimiter.
func valueToken(dec *json.Decoder) (json.Token, error) {
	tok, err := dec.Token()
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return json.Number(""), nil
	}
	return tok, err
}

// nextKey reads an object key; the decoder guarantees it is a string.
func nextKey(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", streamError(err)
	}
	key, _ := tok.(string)
	return key, nil
}

// decodeTask reads the task member's value; it reports false for null.
func decodeTask(dec *json.Decoder, ev *Event, id *flexInt) (bool, error) {
	tok, err := valueToken(dec)
	if err != nil {
		return false, streamError(err)
	}
	if tok == nil {
		return false, nil
	}
	if tok != json.Delim('{') {
		return false, reject("task: not an object")
	}
	for dec.More() {
		key, err := nextKey(dec)
		if err != nil {
			return false, err
		}
		switch key {
		case "pipelineId":
			err = dec.Decode(id)
			if errors.Is(err, errNotInteger) || err == nil && id.set && id.n == 0 {
				err = errNotPositiveID
			}
			if err != nil {
				return false, fieldError("task.pipelineId", err)
			}
		case "buildNumber":
			var n flexInt
			if err := dec.Decode(&n); err != nil {
				return false, fieldError("task.buildNumber", err)
			}
			ev.BuildNumber = n.n
		case "statusCode":
			err = decodeString(dec, &ev.Status, "task.statusCode")
		default: // pipelineName, taskName, message, pipelineUrl...: not needed
			err = skip(dec)
		}
		if err != nil {
			return false, err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return false, streamError(err)
	}
	return true, nil
}

// source is the part of one sources[] item the receiver keeps.
type source struct {
	Branch   shortString `json:"branch"`
	CommitID shortString `json:"commitId"`
}

// decodeSources keeps the first source's branch and commit. They are
// optional hints, so a sources value of another shape, or a field that is
// not a short string, only leaves them empty; further items are skipped by
// the scanner (a Go array takes as many items as it has room for).
func decodeSources(dec *json.Decoder, ev *Event) error {
	var first [1]source
	err := dec.Decode(&first)
	var ve valueError
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		ev.Branch, ev.CommitID = first[0].Branch.s, first[0].CommitID.s
	case errors.As(err, &ve), errors.As(err, &te):
		ev.Branch, ev.CommitID = "", ""
	default:
		return streamError(err)
	}
	return nil
}

func decodeString(dec *json.Decoder, dst *string, path string) error {
	var s shortString
	if err := dec.Decode(&s); err != nil {
		return fieldError(path, err)
	}
	*dst = s.s
	return nil
}

// discard's UnmarshalJSON ignores its input. Decoding into it makes the
// json.Decoder scan (and so validate) one value inside its own buffer and
// move past it, without building any Go value from it.
type discard struct{}

func (*discard) UnmarshalJSON([]byte) error { return nil }

func skip(dec *json.Decoder) error {
	var d discard
	if err := dec.Decode(&d); err != nil {
		return streamError(err)
	}
	return nil
}

// shortString is a JSON string (or null, meaning "") of at most maxString
// bytes; the length is checked on the raw text before a string is made.
type shortString struct{ s string }

func (v *shortString) UnmarshalJSON(b []byte) error {
	v.s = ""
	switch {
	case string(b) == "null":
		return nil
	case b[0] != '"':
		return errNotString
	case len(b) > 2+6*maxString: // even if every character were a \u escape
		return errTooLong
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errNotString // unreachable: the decoder has validated b
	}
	if len(s) > maxString {
		return errTooLong
	}
	v.s = s
	return nil
}

// flexInt is a non-negative integer sent as a JSON number or a string
// holding one; null and "" mean absent.
type flexInt struct {
	n   int64
	set bool
}

func (f *flexInt) UnmarshalJSON(b []byte) error {
	*f = flexInt{}
	switch {
	case string(b) == "null":
		return nil
	case b[0] == '"':
		if len(b) > 2+6*maxNumber {
			return errNotInteger
		}
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return errNotInteger // unreachable: the decoder has validated b
		}
		if s == "" {
			return nil
		}
		b = []byte(s)
	case b[0] == '-' || b[0] >= '0' && b[0] <= '9':
	default:
		return errNotNumber
	}
	n, ok := parseInteger(b)
	if !ok {
		return errNotInteger
	}
	f.n, f.set = n, true
	return nil
}

// parseInteger parses a number in JSON's grammar (leading zeros allowed)
// and reports whether it is an integer from 0 to MaxInt64. It works on the
// decimal digits, so 1.23e5 is 123000 exactly, 1e999999 is refused without
// computing it, and 1.5 or 1e-3 is not an integer.
func parseInteger(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > maxNumber {
		return 0, false
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	digits := func(b []byte) int {
		i := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i
	}
	i := digits(b)
	if i == 0 {
		return 0, false
	}
	var buf [maxNumber]byte
	ds := append(buf[:0], b[:i]...) // the significant digits, int then frac
	b = b[i:]
	exp := 0 // the value is ds × 10^exp
	if len(b) > 0 && b[0] == '.' {
		i = digits(b[1:])
		if i == 0 {
			return 0, false
		}
		ds = append(ds, b[1:1+i]...)
		exp -= i
		b = b[1+i:]
	}
	if len(b) > 0 && (b[0] == 'e' || b[0] == 'E') {
		b = b[1:]
		eneg := len(b) > 0 && b[0] == '-'
		if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
			b = b[1:]
		}
		i = digits(b)
		if i == 0 {
			return 0, false
		}
		e := 0
		for _, c := range b[:i] {
			if e < 1e6 { // saturate: beyond this only the sign matters
				e = e*10 + int(c-'0')
			}
		}
		if eneg {
			e = -e
		}
		exp += e
		b = b[i:]
	}
	if len(b) != 0 {
		return 0, false
	}
	for len(ds) > 0 && ds[0] == '0' {
		ds = ds[1:]
	}
	if len(ds) == 0 {
		return 0, true // zero, whatever its sign or exponent
	}
	for ds[len(ds)-1] == '0' {
		ds = ds[:len(ds)-1]
		exp++
	}
	if exp < 0 || neg || len(ds)+exp > 19 {
		return 0, false // a fraction, negative, or at least 10^19
	}
	var n uint64 // below 10^19, so it fits
	for _, c := range ds {
		n = n*10 + uint64(c-'0')
	}
	for ; exp > 0; exp-- {
		n *= 10
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}
