package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yunxiao-exporter/yunxiao_exporter/config"
	"github.com/yunxiao-exporter/yunxiao_exporter/flowsim"
	"github.com/yunxiao-exporter/yunxiao_exporter/yunxiao"
)

// clientFromConfig loads a config the way the exporter does and builds
// its API client.
func clientFromConfig(t *testing.T, dir, yunxiaoSection string) *yunxiao.Client {
	t.Helper()
	path := filepath.Join(dir, "config.yml")
	writeTestFile(t, path, []byte("yunxiao:\n"+yunxiaoSection+"  organization_id: org-1\n  token: "+testToken+"\npipelines:\n  - id: 1001\n"))
	cfg, err := config.LoadFile(path, config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts := cfg.ClientOptions()
	opts.MaxRetries = 0
	client, err := yunxiao.New(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// TestTLSConfig: TLS to the API is verified by default; tls_config's
// ca_file, server_name, insecure_skip_verify and client certificates work
// against a server with a private CA.
func TestTLSConfig(t *testing.T) {
	sim := flowsim.New(flowsim.Options{Token: testToken, OrganizationID: "org-1"}, flowsim.DemoPipelines()...)
	api := httptest.NewTLSServer(sim)
	t.Cleanup(api.Close)
	// A second server that requires a client certificate from our CA.
	clientCA, certPEM, keyPEM := selfSignedCert(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(clientCA)
	mtls := httptest.NewUnstartedServer(sim)
	mtls.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	mtls.StartTLS()
	t.Cleanup(mtls.Close)
	dir := t.TempDir()
	// httptest's certificate is its own private CA, valid for example.com.
	writeTestFile(t, filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw}))
	writeTestFile(t, filepath.Join(dir, "client.crt"), certPEM)
	writeTestFile(t, filepath.Join(dir, "client.key"), keyPEM)

	endpoint := "  endpoint: " + api.URL + "\n"
	mtlsEndpoint := "  endpoint: " + mtls.URL + "\n"
	cases := []struct {
		name    string
		section string
		wantErr string // "" for success
	}{
		{"verified by default: private CA refused", endpoint, "certificate"},
		{"ca_file", endpoint + "  tls_config:\n    ca_file: ca.pem\n", ""},
		{"server_name that the certificate lacks", endpoint + "  tls_config:\n    ca_file: ca.pem\n    server_name: flow.internal\n", "certificate"},
		{"server_name the certificate has", endpoint + "  tls_config:\n    ca_file: ca.pem\n    server_name: example.com\n", ""},
		{"insecure_skip_verify", endpoint + "  tls_config:\n    insecure_skip_verify: true\n", ""},
		{"client certificate required, none configured", mtlsEndpoint + "  tls_config:\n    ca_file: ca.pem\n", "certificate"},
		{"client certificate", mtlsEndpoint + "  tls_config:\n    ca_file: ca.pem\n    cert_file: client.crt\n    key_file: client.key\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client := clientFromConfig(t, dir, tc.section)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := client.GetPipeline(ctx, 1001)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("want success, got %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("want an error about %q, got %v", tc.wantErr, err)
			case tc.wantErr != "" && yunxiao.ReasonOf(err) != yunxiao.ReasonNetwork:
				t.Errorf("a TLS failure should count as network, got %s", yunxiao.ReasonOf(err))
			}
		})
	}
}

// TestProxyURL: proxy_url sends API requests through the proxy, and the
// HTTPS_PROXY environment is honoured without it.
func TestProxyURL(t *testing.T) {
	sim := flowsim.New(flowsim.Options{Token: testToken, OrganizationID: "org-1"}, flowsim.DemoPipelines()...)
	api := httptest.NewServer(sim)
	t.Cleanup(api.Close)
	target, _ := url.Parse(api.URL)
	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		if r.URL.Host != target.Host {
			http.Error(w, "unexpected target "+r.URL.Host, http.StatusBadGateway)
			return
		}
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)

	// The API's address must not be exempt from proxying (NO_PROXY covers
	// loopback by default in some environments); use a name for it.
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	dir := t.TempDir()
	client := clientFromConfig(t, dir, fmt.Sprintf("  endpoint: %s\n  proxy_url: %s\n", api.URL, proxy.URL))
	if _, err := client.GetPipeline(context.Background(), 1001); err != nil {
		t.Fatal(err)
	}
	if proxied.Load() != 1 {
		t.Errorf("%d requests went through proxy_url, want 1", proxied.Load())
	}
	if got := sim.Requests(flowsim.EndpointPipeline); got != 1 {
		t.Errorf("the API saw %d requests, want 1", got)
	}
}
