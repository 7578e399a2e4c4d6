// Package logging gives the program one log stream: every line, whether
// our code wrote it through go-kit/log or exporter-toolkit wrote it through
// log/slog, is formatted by one slog.Handler from prometheus/common/promslog,
// so that both formats carry the same keys (time, level, source, msg) in
// the same time format.
package logging

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// GoKit returns a go-kit logger that hands every line to h. Level,
// message and caller come from the go-kit key-values (level.Info & co,
// "msg") and the call site; the handler adds time and source itself, so
// callers must not add "ts" or "caller".
func GoKit(h slog.Handler) log.Logger { return gokitAdapter{h: h} }

type gokitAdapter struct{ h slog.Handler }

// goKitPrefix names the frames to step over to find the call site: the
// go-kit context and level wrappers between our code and Log.
const goKitPrefix = "github.com/go-kit/log"

func (a gokitAdapter) Log(keyvals ...any) error {
	lvl, msg := slog.LevelInfo, ""
	attrs := make([]slog.Attr, 0, len(keyvals)/2)
	for i := 0; i < len(keyvals); i += 2 {
		key := fmt.Sprint(keyvals[i])
		var val any = log.ErrMissingValue
		if i+1 < len(keyvals) {
			val = keyvals[i+1]
		}
		switch v := val.(type) {
		case level.Value:
			if key == "level" {
				lvl = slogLevel(v)
				continue
			}
		case log.Valuer:
			val = v()
		}
		if key == "msg" && msg == "" {
			if s, ok := val.(string); ok {
				msg = s
				continue
			}
		}
		attrs = append(attrs, attrValue(key, val))
	}
	ctx := context.Background()
	if !a.h.Enabled(ctx, lvl) {
		return nil
	}
	r := slog.NewRecord(time.Now(), lvl, msg, callSite())
	r.AddAttrs(attrs...)
	return a.h.Handle(ctx, r)
}

// attrValue keeps errors and Stringers as their text, as go-kit did.
func attrValue(key string, val any) slog.Attr {
	switch v := val.(type) {
	case error:
		return slog.String(key, v.Error())
	case fmt.Stringer:
		return slog.String(key, v.String())
	}
	return slog.Any(key, val)
}

func slogLevel(v level.Value) slog.Level {
	switch v.String() {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// callSite returns the program counter of the first caller outside go-kit
// and this package, for the handler's source key.
func callSite() uintptr {
	var pcs [16]uintptr
	n := runtime.Callers(3, pcs[:]) // skip Callers, callSite, Log
	for _, pc := range pcs[:n] {
		frame, _ := runtime.CallersFrames([]uintptr{pc}).Next()
		if !strings.HasPrefix(frame.Function, goKitPrefix) {
			return pc
		}
	}
	return 0
}
