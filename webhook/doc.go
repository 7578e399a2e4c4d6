// Package webhook receives the notifications that Flow's "webhook"
// notification plugin POSTs when a job changes status, and turns each one
// into a request to re-read that pipeline from the API now instead of at
// the next cache_ttl.
//
// # An event is only a signal
//
// Flow's payload carries no signature, timestamp or sender identity, and
// anyone who learns the URL can send one. So nothing in it is exported:
// the receiver takes the pipeline id (plus a few short strings for debug
// logs) and asks the Refresher to fetch that pipeline through the same
// client, concurrency limit and rate limit as polling. Even a sender that
// has the token can at worst cause early fetches of watched pipelines (and,
// through Options.OnUnwatched, discoveries), within the receiver's and the
// client's rate limits; it can never set a metric's value, a pipeline or a
// label.
//
// # What is trusted
//
// Only the token in the URL (?token=...), compared in constant time on
// SHA-256 digests of both sides, so neither its content nor its length
// leaks through timing. The token is read from Options.Token on every
// request (config reloads apply at once; "" disables the endpoint) and
// never appears in a log line, error, answer or metric. The body is
// untrusted: at most MaxBodyBytes are read, it is walked with a
// json.Decoder, and only task.pipelineId, task.buildNumber,
// task.statusCode, event, action and the first source's branch and commit
// are decoded. Every other value, globalParams above all (run parameters,
// which may hold secrets), is skipped by the decoder's scanner without
// being unmarshalled into a Go value; see Decode.
//
// Unauthenticated requests are refused before the rate limit is consulted
// and before the body is read, so a stranger cannot spend the budget meant
// for Flow's events.
//
// # Coalescing
//
// A run sends one event per job status change, often dozens within a
// second. Per pipeline, the first event starts a refresh at once (the
// leading edge: a failure reaches /metrics as soon as the API has it) and
// opens a window (Options.Window, never shorter than Options.MinInterval).
// Events that arrive while the window is open are counted, and when it
// closes they cause exactly one trailing refresh, which opens the next
// window. A window with no events frees the pipeline's entry. So a burst
// of any size causes at most two refreshes, and refreshes of one pipeline
// start at least a window apart and never overlap. Each pipeline with an
// open window holds one timer and, while its refresh runs, one goroutine;
// the number of such pipelines is capped (beyond it events are answered
// 429).
package webhook
