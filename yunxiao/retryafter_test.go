package yunxiao

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name  string
		value string
		want  time.Duration
		ok    bool
	}{
		{"empty", "", 0, false},
		{"blank", "  ", 0, false},
		{"seconds", "120", 2 * time.Minute, true},
		{"seconds with spaces", " 7 ", 7 * time.Second, true},
		{"zero", "0", 0, true},
		{"one", "1", time.Second, true},
		{"exactly the cap", "600", 10 * time.Minute, true},
		{"just over the cap", "601", 10 * time.Minute, true},
		{"huge", "86400000", 10 * time.Minute, true},
		{"beyond int64", "99999999999999999999999", 0, false},
		{"negative", "-5", 0, false},
		{"fraction", "1.5", 0, false},
		{"garbage", "soon", 0, false},
		{"unit suffix", "10s", 0, false},
		{"HTTP-date future", date(90 * time.Second), 90 * time.Second, true},
		{"HTTP-date now", date(0), 0, true},
		{"HTTP-date past", date(-time.Hour), 0, true},
		{"HTTP-date far future", date(48 * time.Hour), 10 * time.Minute, true},
		{"RFC 850 date", now.Add(time.Minute).Format(time.RFC850), time.Minute, true},
		{"ANSI C date", now.Add(time.Minute).Format(time.ANSIC), time.Minute, true},
		{"ISO date is not HTTP-date", now.Add(time.Minute).Format(time.RFC3339), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseRetryAfter(tt.value, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.value, got, ok, tt.want, tt.ok)
			}
		})
	}
}
