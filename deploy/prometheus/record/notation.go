package main

import (
	"math"
	"strconv"
	"strings"
)

// encodeValues writes recorded samples in promtool's expanding notation
// (Prometheus 2.x and 3.x read it alike):
//
//	_       no sample at this step;  _xN  N steps without a sample
//	stale   a staleness marker
//	a       one value
//	axN     a, N+1 times
//	a+bxN   a, a+b, ..., a+N·b (N+1 values); a-bxN likewise
//
// A run is written as a+bxN only when promtool's expansion (it adds b to
// a, N times, in float64) gives back exactly the recorded values, so the
// notation never alters a value. Trailing steps without samples are
// dropped.
func encodeValues(samples []sample) string {
	n := len(samples)
	for n > 0 && samples[n-1].kind == absent {
		n--
	}
	samples = samples[:n]
	var toks []string
	for i := 0; i < len(samples); {
		s := samples[i]
		switch s.kind {
		case absent:
			j := i
			for j < len(samples) && samples[j].kind == absent {
				j++
			}
			if j-i == 1 {
				toks = append(toks, "_")
			} else {
				toks = append(toks, "_x"+strconv.Itoa(j-i))
			}
			i = j
			continue
		case stale:
			toks = append(toks, "stale")
			i++
			continue
		}
		a := parseNum(formatNum(s.v))
		if a != s.v && !(math.IsNaN(a) && math.IsNaN(s.v)) || !finite(a) {
			// Not representable exactly: cannot happen with formatNum's
			// shortest round-trip form, but never write a value that reads
			// back otherwise.
			toks = append(toks, formatNum(s.v))
			i++
			continue
		}
		// The longest run from i that promtool's expansion reproduces.
		run := 1
		var b float64
		if i+1 < len(samples) && samples[i+1].kind == value && finite(samples[i+1].v) {
			b = parseNum(formatNum(samples[i+1].v - a))
			acc := a
			for j := i + 1; j < len(samples) && samples[j].kind == value; j++ {
				acc += b
				if math.Float64bits(acc) != math.Float64bits(samples[j].v) {
					break
				}
				run++
			}
		}
		switch {
		case run == 1, run == 2 && b != 0:
			// Two values that differ read better as two values (and let
			// the second start a longer run).
			toks = append(toks, formatNum(a))
			i++
		case b == 0:
			toks = append(toks, formatNum(a)+"x"+strconv.Itoa(run-1))
			i += run
		default:
			sign := "+"
			if b < 0 {
				sign = "-"
			}
			toks = append(toks, formatNum(a)+sign+formatNum(math.Abs(b))+"x"+strconv.Itoa(run-1))
			i += run
		}
	}
	return strings.Join(toks, " ")
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// formatNum writes f in a form PromQL's number lexer reads back exactly:
// integers without an exponent up to 2^53, otherwise the shortest
// round-trip form.
func formatNum(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case f == math.Trunc(f) && math.Abs(f) < 1<<53:
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func parseNum(s string) float64 {
	switch s {
	case "Inf":
		return math.Inf(1)
	case "-Inf":
		return math.Inf(-1)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// decodeValues expands the notation back, as promtool does; the tests use
// it to check encodeValues.
func decodeValues(s string) ([]sample, bool) {
	var out []sample
	for _, tok := range strings.Fields(s) {
		switch {
		case tok == "_":
			out = append(out, sample{})
		case strings.HasPrefix(tok, "_x"):
			n, err := strconv.Atoi(tok[2:])
			if err != nil {
				return nil, false
			}
			for range n {
				out = append(out, sample{})
			}
		case tok == "stale":
			out = append(out, sample{kind: stale})
		default:
			head, times, hasX := strings.Cut(tok, "x")
			if !hasX {
				out = append(out, sample{kind: value, v: parseNum(tok)})
				continue
			}
			n, err := strconv.Atoi(times)
			if err != nil {
				return nil, false
			}
			// a+b or a-b, a possibly negative or with an exponent.
			a, b := head, "0"
			for k := len(head) - 1; k > 0; k-- {
				if (head[k] == '+' || head[k] == '-') && head[k-1] != 'e' && head[k-1] != 'E' {
					a, b = head[:k], head[k:]
					break
				}
			}
			av, bv := parseNum(a), parseNum(b)
			for range n + 1 {
				out = append(out, sample{kind: value, v: av})
				av += bv
			}
		}
	}
	return out, true
}
