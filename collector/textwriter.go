package collector

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"golang.org/x/sync/singleflight"
)

// textContentType is the text format, version 0.0.4: every Prometheus
// accepts it.
var textContentType = string(expfmt.NewFormat(expfmt.TypeTextPlain))

// textWriter is the scrape's fast path: it writes the pre-rendered
// exposition of every pipeline, in family-name order merged with the rest
// of the registry, compressed as the client asks.
type textWriter struct {
	c        *Collector
	gatherer prometheus.Gatherer
	errorLog promhttp.Logger

	shared   singleflight.Group // concurrent scrapes share one compressed body per encoding
	lastSize atomic.Int64       // the last compressed body's size, to size the next buffer
	waiting  atomic.Int64       // scrapes waiting for a shared body (tests watch it)
	renders  atomic.Int64       // compressed bodies made (tests watch it)
	bufs     sync.Pool          // *bufio.Writer
	gzips    sync.Pool          // *gzip.Writer
	zstds    sync.Pool          // *zstd.Encoder
}

// acceptsText reports whether an Accept header lets us answer in the text
// format 0.0.4: no header, any text/plain, or a wildcard. A client asking
// only for protobuf or OpenMetrics goes through client_golang's encoder.
func acceptsText(accept string) bool {
	if strings.TrimSpace(accept) == "" {
		return true
	}
	for _, part := range strings.Split(accept, ",") {
		mediaType, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if q, ok := params["q"]; ok {
			if v, err := strconv.ParseFloat(q, 64); err == nil && v <= 0 {
				continue
			}
		}
		if mediaType == "text/plain" || mediaType == "*/*" || mediaType == "text/*" {
			return true
		}
	}
	return false
}

// encodingFor picks the response encoding: zstd, then gzip, else none.
func encodingFor(acceptEncoding string) string {
	best, bestQ := "identity", 0.0
	for _, part := range strings.Split(acceptEncoding, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		name = strings.ToLower(strings.TrimSpace(name))
		if q <= 0 || (name != "gzip" && name != "zstd") {
			continue
		}
		// At equal weight zstd wins: as small, and cheaper to make.
		if q > bestQ || q == bestQ && name == "zstd" {
			best, bestQ = name, q
		}
	}
	return best
}

func (tw *textWriter) serve(w http.ResponseWriter, r *http.Request, start time.Time) {
	encoding := encodingFor(r.Header.Get("Accept-Encoding"))
	h := w.Header()
	h.Set("Content-Type", textContentType)
	h.Add("Vary", "Accept-Encoding")
	if encoding == "identity" {
		// Nothing worth sharing but the bytes themselves: stream them.
		bw := tw.bufWriter(w)
		tw.write(bw, start)
		_ = bw.Flush()
		tw.bufs.Put(bw)
		return
	}
	tw.waiting.Add(1)
	v, _, _ := tw.shared.Do(encoding, func() (any, error) {
		tw.renders.Add(1)
		return tw.compressed(encoding, start), nil
	})
	tw.waiting.Add(-1)
	body := v.([]byte)
	h.Set("Content-Encoding", encoding)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// compressed renders the exposition into a fresh buffer (shared by the
// scrapes that joined it, so never reused) through a pooled compressor.
func (tw *textWriter) compressed(encoding string, start time.Time) []byte {
	buf := bytes.NewBuffer(make([]byte, 0, tw.lastSize.Load()*9/8+4096))
	var zw io.WriteCloser
	switch encoding {
	case "zstd":
		z, _ := tw.zstds.Get().(*zstd.Encoder)
		if z == nil {
			z, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
		}
		z.Reset(buf)
		defer tw.zstds.Put(z)
		zw = z
	default:
		g, _ := tw.gzips.Get().(*gzip.Writer)
		if g == nil {
			g, _ = gzip.NewWriterLevel(nil, gzip.BestSpeed)
		}
		g.Reset(buf)
		defer tw.gzips.Put(g)
		zw = g
	}
	bw := tw.bufWriter(zw)
	tw.write(bw, start)
	_ = bw.Flush()
	tw.bufs.Put(bw)
	_ = zw.Close()
	tw.lastSize.Store(int64(buf.Len()))
	return buf.Bytes()
}

func (tw *textWriter) bufWriter(w io.Writer) *bufio.Writer {
	if bw, ok := tw.bufs.Get().(*bufio.Writer); ok {
		bw.Reset(w)
		return bw
	}
	return bufio.NewWriterSize(w, 64<<10)
}

// write writes the whole exposition: the pipelines' families and the rest
// of the registry merged in name order, and the scrape's own duration.
func (tw *textWriter) write(w *bufio.Writer, start time.Time) {
	others, err := tw.gatherer.Gather()
	if err != nil && tw.errorLog != nil {
		tw.errorLog.Println("error gathering metrics:", err) // served anyway, as promhttp's ContinueOnError does
	}
	c := tw.c
	_, _, targets := c.current()
	snaps := make([]*snapshot, 0, len(targets))
	for _, t := range targets {
		if s := t.snap.Load(); s != nil {
			snaps = append(snaps, s)
		}
	}
	now := c.now().UnixMilli()
	var num []byte
	next := 0 // the next of others to write
	flushOthersBefore := func(name string) {
		for next < len(others) && others[next].GetName() < name {
			_, _ = expfmt.MetricFamilyToText(w, others[next])
			next++
		}
	}
	scrapeDone := false
	writeScrapeDuration := func() {
		flushOthersBefore(scrapeDurationDef.Name)
		_, _ = expfmt.MetricFamilyToText(w, scrapeDurationFamily(time.Since(start)))
		scrapeDone = true
	}
	for _, f := range familiesByName {
		name := metricDefs[f].Name
		if !scrapeDone && scrapeDurationDef.Name < name {
			writeScrapeDuration()
		}
		present := false
		for _, s := range snaps {
			if s.has[f] {
				present = true
				break
			}
		}
		if !present {
			continue
		}
		flushOthersBefore(name)
		_, _ = w.Write(headers[f])
		for _, s := range snaps {
			_, _ = w.Write(s.lines(f))
			for _, d := range s.dynamic {
				if d.family != f {
					continue
				}
				_, _ = w.Write(d.prefix)
				num = appendFloat(num[:0], d.value(clockAt(now, s.frozenAt)))
				num = append(num, '\n')
				_, _ = w.Write(num)
			}
		}
	}
	if !scrapeDone {
		writeScrapeDuration()
	}
	flushOthersBefore("\xff")
}
