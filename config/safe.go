package config

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SafeConfig holds the running config and swaps it whole on a successful
// reload; a failed reload leaves the running config untouched.
type SafeConfig struct {
	mu   sync.RWMutex
	cfg  *Config
	opts LoadOptions

	reloadSuccess prometheus.Gauge
	reloadTime    prometheus.Gauge
}

// NewSafeConfig returns an empty SafeConfig whose reload metrics are
// registered with reg.
func NewSafeConfig(reg prometheus.Registerer, opts LoadOptions) *SafeConfig {
	sc := &SafeConfig{
		opts: opts,
		reloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "yunxiao_exporter_config_last_reload_successful",
			Help: "1 when the last attempt to load the configuration file succeeded, 0 when it failed (the previous configuration stays in force).",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "yunxiao_exporter_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful load of the configuration file.",
		}),
	}
	reg.MustRegister(sc.reloadSuccess, sc.reloadTime)
	return sc
}

// Get returns the running config; callers must not modify it.
func (sc *SafeConfig) Get() *Config {
	sc.mu.RLock()
	defer sc.mu.RUnlock()
	return sc.cfg
}

// ReloadConfig loads path and, only if it is valid and apply accepts it,
// makes it the running config. On any error the old config stays in force
// (apply must leave things as they were when it fails).
func (sc *SafeConfig) ReloadConfig(path string, apply func(*Config) error) (*Config, error) {
	cfg, err := LoadFile(path, sc.opts)
	if err == nil && apply != nil {
		err = apply(cfg)
	}
	if err != nil {
		sc.reloadSuccess.Set(0)
		return nil, err
	}
	sc.Set(cfg)
	return cfg, nil
}

// Set installs cfg as the running config (used by --demo, which has no file).
func (sc *SafeConfig) Set(cfg *Config) {
	sc.mu.Lock()
	sc.cfg = cfg
	sc.mu.Unlock()
	sc.reloadSuccess.Set(1)
	sc.reloadTime.Set(float64(time.Now().UnixNano()) / 1e9)
}
