package main

import (
	"fmt"

	"github.com/yunxiao-exporter/yunxiao_exporter/collector"
)

func emptyShard() Scenario {
	return Scenario{
		Name: "empty shard and empty discovery",
		Doc: `c is shard 2 of 3 and owns none of the configured pipelines (9101 and 9102
hash to 0 mod 3, 9103 to 1); d has discovery on, no configured pipeline,
and its include filter matches none of the organization's pipelines; d is
added at minute 5. Both probe the API all the same: yunxiao_up 1 from
their first scrape (the probe runs within it). Nothing fires.`,
		Origin: hour,
		Script: func(r *Recorder) {
			api := r.API()
			api.Pipeline(9101, "backend-build", ran(1, Push, m(-30), m(-20), "SUCCESS"))
			api.Pipeline(9102, "frontend-build", ran(2, Push, m(-30), m(-20), "SUCCESS"))
			api.Pipeline(9103, "deploy-production", ran(3, Manual, m(-30), m(-20), "SUCCESS"))
			r.Exporter(instC, ExporterSpec{Config: pipes("9101 backend-build", "9102 frontend-build", "9103 deploy-production"),
				Shard: collector.Shard{Index: 2, Total: 3}})
			r.RunTo(5)
			r.Exporter(instD, spec("discovery:\n  enabled: true\n  include: ['nightly-.*']\npipelines: []\n"))
			r.RunTo(61)
		},
		Expect: quietAll(10, 60),
	}
}

func exporterDown() Scenario {
	return Scenario{
		Name: "ExporterDown",
		Doc: `Replica a cannot be scraped from minute 10 to 29 (its process keeps
running, unreachable); one failed scrape at minute 35 is not an outage.
Replica b is fine. A blackbox probe of the Flow API (job blackbox) is down
all along: not the exporter.`,
		Origin: hour,
		Script: func(r *Recorder) {
			r.API().Pipeline(1001, "backend-build", ran(1, Push, m(-30), m(-20), "SUCCESS"))
			cfg := spec(pipes("1001 backend-build"))
			a := r.Exporter(instA, cfg)
			r.Exporter(instB, cfg)
			r.Foreign("blackbox", "https://openapi-rdc.aliyuncs.com", false)
			r.RunTo(10)
			a.Unreachable(true)
			r.RunTo(30)
			a.Unreachable(false)
			r.RunTo(35)
			a.MissScrape()
			r.RunTo(60)
		},
		Expect: []Case{
			quiet(14, exporterDownA),
			fires(16, exporterDownA, X(instA)),
			quiet(31, exporterDownA),
			quiet(36, exporterDownA).because("One failed scrape at minute 35."),
			quiet(36, exporterAbsentA),
		},
	}
}

func exporterAbsent() Scenario {
	return Scenario{
		Name: "ExporterAbsent",
		Doc: `No target of the exporter's job at all, only a blackbox probe named after
the API (job yunxiao-api-probe): YunxiaoExporterAbsent fires after 15m (the
old selector job=~".*yunxiao.*" matched the probe and never fired).`,
		Script: func(r *Recorder) {
			r.Foreign("yunxiao-api-probe", "https://openapi-rdc.aliyuncs.com", true)
			r.RunTo(30)
		},
		Expect: []Case{
			quiet(14, exporterAbsentA),
			fires(16, exporterAbsentA, Alert{Labels: map[string]string{"job": ExporterJob}}),
		},
	}
}

func configReloadFailed() Scenario {
	good := pipes("1001 backend-build")
	return Scenario{
		Name: "ConfigReloadFailed",
		Doc: `A reload (SIGHUP or POST /-/reload) fails at minute 5 (cache_ttl: 30
seconds is not a duration; the previous config stays in force) and one is
fixed at minute 31; a scrape fails at minute 15.`,
		Origin: hour,
		Script: func(r *Recorder) {
			r.API().Pipeline(1001, "backend-build", ran(1, Push, m(-30), m(-20), "SUCCESS"))
			a := r.Exporter(instA, spec(good))
			r.RunTo(5)
			if err := a.Reload("cache_ttl: 30 seconds\n"+good, false); err == nil {
				r.fail(fmt.Errorf("the bad reload succeeded"))
			}
			r.RunTo(15)
			a.MissScrape()
			r.RunTo(31)
			r.fail(a.Reload(good, false))
			r.RunTo(40)
		},
		Expect: []Case{
			quiet(9, reloadFailed),
			fires(11, reloadFailed, X(instA)),
			fires(15, reloadFailed, X(instA)).because("The failed scrape resolves nothing."),
			quiet(32, reloadFailed),
		},
	}
}

func discoveryFailing() Scenario {
	d := func(inst string) Alert { return X(inst) }
	disc := "discovery:\n  enabled: true\npipelines: []\n"
	return Scenario{
		Name: "DiscoveryFailing",
		Doc: `Discovery runs at start, after a reload and every refresh_interval (10m);
yunxiao_discovery_errors_total is exported while discovery is enabled, the
last success timestamp once a discovery succeeded. Each exporter has its
own token; 403 answers to ListPipelines are a token that may not list.
- a discovers at 0, 10, 20, ...; a scrape fails at minute 35.
- b discovers at 0 and 10, then fails (403) at 20, 30 and 40, and
  succeeds at 50.
- c has discovery off: no discovery series at all.
- d never discovers (403): quiet until discovery has been enabled for 30m;
  a scrape fails at minute 35.
- e discovers at 0 and 10; restarted at minute 20 with a token that may not
  list, it never succeeds again.
- f restarts at minute 20; its first discovery then fails (503), the next,
  at minute 30, succeeds.`,
		Origin: hour,
		Script: func(r *Recorder) {
			api := r.API()
			api.Pipeline(9201, "svc-one", ran(1, Push, m(-30), m(-20), "SUCCESS"))
			api.Pipeline(9202, "svc-two", ran(2, Push, m(-30), m(-20), "SUCCESS"))
			forbidden := func(token string, from, to int) Fault {
				return Fault{List: true, Token: token, From: m(from), To: m(to), Status: 403, Code: "Forbidden", Message: "no permission to list pipelines"}
			}
			api.Fault(forbidden("pt-b", 11, 45))
			api.Fault(forbidden("pt-d", 0, 0))
			api.Fault(forbidden("pt-e-rotated", 0, 0))
			api.Fault(Fault{List: true, Token: "pt-f", From: m(20), To: m(21), Status: 503, Code: "ServiceUnavailable", Message: "try later"})
			a := r.Exporter(instA, ExporterSpec{Token: "pt-a", Config: disc})
			r.Exporter(instB, ExporterSpec{Token: "pt-b", Config: disc})
			r.Exporter(instC, ExporterSpec{Token: "pt-c", Config: pipes("9201 svc-one")})
			dd := r.Exporter(instD, ExporterSpec{Token: "pt-d", Config: disc})
			e := r.Exporter(instE, ExporterSpec{Token: "pt-e", Config: disc})
			f := r.Exporter(instF, ExporterSpec{Token: "pt-f", Config: disc})
			r.RunTo(20)
			e.Restart(ExporterSpec{Token: "pt-e-rotated", Config: disc})
			f.Restart()
			r.RunTo(35)
			a.MissScrape()
			dd.MissScrape()
			r.RunTo(60)
		},
		Expect: []Case{
			quiet(5, discoveryFail).because("Just started: d has not discovered yet."),
			quiet(22, discoveryFail).because("e and f restarted at minute 20."),
			quiet(29, discoveryFail).because("b's and e's last success is 19m old; d has tried for 29m."),
			fires(31, discoveryFail, d(instD)),
			fires(35, discoveryFail, d(instD)).because("The failed scrapes of a and d resolve nothing and fire nothing."),
			fires(40, discoveryFail, d(instD)).because("b's and e's last success is exactly 30m old: not more yet."),
			fires(41, discoveryFail, d(instB), d(instD), d(instE)),
			fires(52, discoveryFail, d(instD), d(instE)).because("b discovered again at minute 50; e's last success has left the window."),
		},
	}
}
